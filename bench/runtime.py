"""The embedder's runtime on the answer path: sentence-transformers on torch against ONNX Runtime
(`RAG_EMBEDDING_RUNTIME=onnx`), measured side by side in one run: start-up in a fresh process
(imports, model, one embedding), one question embedded alone (squad-dev-a questions, the two
runtimes alternating), `retrieval_ms` of `rag serve` answering the same questions, and an ingest
of the same articles against the bare encoder (sentence-transformers' `encode` of our chunks)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import ROOT
from bench.live import ServerProcess
from bench.report import percentile, table
from bench.streaming import build_index, one_stream
from rag.settings import EmbeddingRuntime

RUNTIMES: tuple[EmbeddingRuntime, ...] = ("torch", "onnx")
STARTUP = (
    "import time; started = time.perf_counter(); "
    "from rag.embeddings import make_embedder; from rag.settings import Settings; "
    "make_embedder(Settings(embedding_runtime={runtime!r})).embed(['a question']); "
    "print(time.perf_counter() - started)"
)


def startup_s(runtime: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", STARTUP.format(runtime=runtime)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


PER_QUESTION = (
    "import json, sys, time; from rag.embeddings import make_embedder; "
    "from rag.settings import Settings; questions = json.load(sys.stdin); "
    "embedder = make_embedder(Settings(embedding_runtime={runtime!r})); "
    "[embedder.embed([q]) for q in questions]; times = []\n"
    "for q in questions:\n"
    "    started = time.perf_counter(); embedder.embed([q]); "
    "times.append(1000 * (time.perf_counter() - started))\n"
    "print(json.dumps(times))"
)


def per_question_ms(questions: list[str]) -> dict[str, list[float]]:
    """Each runtime in a process of its own (ONNX Runtime's threads spin for a while after a
    run and would slow torch beside them), twice, in alternating order; timed on a second pass
    over the questions (torch prepares its kernels for each new length the first time)."""
    times: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    for runtime in (*RUNTIMES, *reversed(RUNTIMES)):
        done = subprocess.run(
            [sys.executable, "-c", PER_QUESTION.format(runtime=runtime)],
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            input=json.dumps(questions),
            capture_output=True,
            text=True,
            check=True,
        )
        times[runtime] += json.loads(done.stdout.strip().splitlines()[-1])
    return times


async def retrieval_ms(url: str, questions: list[str]) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        await one_stream(http, questions[0])
        results = [await one_stream(http, q) for q in questions]
    return [r["done"]["timings"]["retrieval_ms"] for r in results if r["done"]]


def ingest_s(corpus: Path, runtime: EmbeddingRuntime | None) -> float:
    """Our ingest with `runtime`, or (None) the bare encoder over the same chunk texts."""
    from bench.ingestion import worker_encode
    from rag.embeddings import make_embedder
    from rag.ingestion import ingest
    from rag.settings import Settings

    if runtime is None:
        return float(worker_encode(corpus)["seconds"])
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(index_dir=Path(tmp) / "index", embedding_runtime=runtime)
        embedder = make_embedder(settings)
        embedder.embed(["warm up"])
        started = time.perf_counter()
        ingest([corpus], settings, embedder, progress=False)
        return time.perf_counter() - started


def run(dataset: Path, quick: bool = False) -> dict[str, Any]:
    from rag.squad import load_articles, write_articles

    articles = load_articles(dataset)[:3]
    questions = [q.text for a in load_articles(dataset) for q in a.questions][:: 25 if quick else 5]
    questions = questions[: 20 if quick else 200]
    startups: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    for repeat in range(1 if quick else 3):
        for runtime in RUNTIMES if repeat % 2 == 0 else reversed(RUNTIMES):
            startups[runtime].append(startup_s(runtime))
    alone = per_question_ms(questions)
    served: dict[str, list[float]] = {}
    ingests: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus, index = Path(tmp) / "squad", Path(tmp) / "index"
        write_articles(articles, corpus)
        build_index(corpus, index)
        for runtime in RUNTIMES:
            env = {"RAG_LLM": "mock", "RAG_MOCK_TOKEN_DELAY_MS": "0"}
            env["RAG_EMBEDDING_RUNTIME"] = runtime
            with ServerProcess(env, "--index", str(index)) as live:
                served[runtime] = asyncio.run(retrieval_ms(live.url, questions[:100]))
        ingests["encoder"] = ingest_s(corpus, None)
        for runtime in RUNTIMES:
            ingests[runtime] = ingest_s(corpus, runtime)
    return {
        "questions": len(questions),
        "served": min(100, len(questions)),
        "rows": {
            runtime: {
                "startup_s": round(min(startups[runtime]), 2),
                "embed_p50_ms": round(percentile(alone[runtime], 0.5), 2),
                "embed_p95_ms": round(percentile(alone[runtime], 0.95), 2),
                "retrieval_p50_ms": round(percentile(served[runtime], 0.5), 2),
                "retrieval_p95_ms": round(percentile(served[runtime], 0.95), 2),
                "ingest_over_encoder": round(ingests[runtime] / ingests["encoder"], 3),
            }
            for runtime in RUNTIMES
        },
        "ingest_s": {name: round(seconds, 2) for name, seconds in ingests.items()},
    }


def render(r: dict[str, Any]) -> str:
    rows = [
        [
            runtime,
            row["startup_s"],
            f"{row['embed_p50_ms']} / {row['embed_p95_ms']}",
            f"{row['retrieval_p50_ms']} / {row['retrieval_p95_ms']}",
            row["ingest_over_encoder"],
        ]
        for runtime, row in r["rows"].items()
    ]
    headers = ["runtime", "start-up (s)", "a question embedded p50 / p95 (ms)"]
    headers += ["`retrieval_ms` p50 / p95", "ingest / bare encoder"]
    return "\n".join(
        [
            "## The embedder's runtime: torch or ONNX Runtime",
            "",
            f"all-MiniLM-L6-v2; start-up in a fresh process (best of the runs); {r['questions']} "
            "squad-dev-a questions embedded one at a time, after a first pass (each runtime in "
            "its own process, twice, alternating); `retrieval_ms` of `rag serve` (hybrid "
            f"retrieval, mock LLM) over {r['served']} of them; an ingest of 3 articles against "
            "sentence-transformers' own `encode` of the same chunks "
            f"({r['ingest_s']['encoder']} s).",
            "",
            *table(headers, "lrrrr", rows),
            "",
        ]
    )
