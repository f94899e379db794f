"""The LLM engine: 1, 2, 4 and 8 clients asking squad-dev-a questions through `rag serve` on the
same cores, each way in one run: today's single slot (llama.cpp in the API process), the engine
process with one slot (what the hop costs), the engine decoding up to 4 answers together, and
`python -m llama_cpp.server` (the packaged server) behind our `openai` backend, as the outside
reference. Then answers decoded together against the same answers decoded alone (greedy): how
many are the same text."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.live import ServerProcess, free_port
from bench.report import percentile, table
from bench.streaming import one_stream

CLIENTS = (1, 2, 4, 8)
WAYS: dict[str, dict[str, str]] = {
    "single slot (in-process)": {"RAG_LLM_ENGINE": "inline", "RAG_MAX_GENERATIONS": "1"},
    "engine, 1 slot": {"RAG_LLM_ENGINE": "process", "RAG_MAX_GENERATIONS": "1"},
    "engine, 4 slots": {"RAG_LLM_ENGINE": "process", "RAG_MAX_GENERATIONS": "4"},
    "llama_cpp.server": {"RAG_LLM": "openai", "RAG_MAX_GENERATIONS": "8"},
}


async def clients_asking(url: str, questions: list[str], clients: int) -> dict[str, Any]:
    """`clients` at once, each asking the next question as soon as its answer ended."""
    pending = list(questions)
    results: list[dict[str, Any]] = []

    async def client(http: httpx.AsyncClient) -> None:
        while pending:
            results.append(await one_stream(http, pending.pop(0)))

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        await one_stream(http, questions[-1])  # the prompt head's cache, the first threads
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - started
    done = [r for r in results if r["completed"]]
    tokens = sum(r["done"]["usage"]["completion_tokens"] for r in done)
    first = [r["first_token_ms"] for r in done if r["first_token_ms"] is not None]
    gaps = [g for r in done for g in r["gaps_ms"]]
    return {
        "clients": clients,
        "answers": len(done),
        "failed": len(results) - len(done),
        "seconds": round(seconds, 2),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 2),
        "requests_per_s": round(len(done) / seconds, 3),
        "ttft_p50_ms": round(percentile(first, 0.5), 1),
        "ttft_p95_ms": round(percentile(first, 0.95), 1),
        "gap_p99_ms": round(percentile(gaps, 0.99), 1),
    }


async def lone_client(urls: dict[str, str], questions: list[str]) -> dict[str, Any]:
    """One client asking each question of every way in turn (which goes first alternates):
    first token and decode ms per token (an answer's mean gap between its tokens), per way."""
    first: dict[str, list[float]] = {name: [] for name in urls}
    decode: dict[str, list[float]] = {name: [] for name in urls}
    clients = {name: httpx.AsyncClient(base_url=url, timeout=600) for name, url in urls.items()}
    try:
        for client in clients.values():
            await one_stream(client, questions[-1])  # the prompt head's cache, the first threads
        for number, question in enumerate(questions):
            names = list(urls) if number % 2 == 0 else list(reversed(urls))
            for name in names:
                result = await one_stream(clients[name], question)
                if result["first_token_ms"] is not None:
                    first[name].append(result["first_token_ms"])
                if result["gaps_ms"]:
                    decode[name].append(sum(result["gaps_ms"]) / len(result["gaps_ms"]))
    finally:
        for client in clients.values():
            await client.aclose()
    return {
        name: {
            "questions": len(first[name]),
            "ttft_p50_ms": round(percentile(first[name], 0.5), 1),
            "ttft_p95_ms": round(percentile(first[name], 0.95), 1),
            "decode_p50_ms": round(percentile(decode[name], 0.5), 2),
        }
        for name in urls
    }


def lone_client_run(index: Path, questions: list[str]) -> dict[str, Any]:
    """The single slot in-process and the engine process with one slot, both serving at once,
    asked the same questions by one client in turn."""
    ways = list(WAYS)[:2]
    env = {"RAG_MAX_QUEUE": "64"}
    with (
        ServerProcess({**env, **WAYS[ways[0]]}, "--index", str(index)) as inline,
        ServerProcess({**env, **WAYS[ways[1]]}, "--index", str(index)) as engine,
    ):
        return asyncio.run(lone_client({ways[0]: inline.url, ways[1]: engine.url}, questions))


def packaged_server(model: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m llama_cpp.server` on a free port, once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    command += ["--n_ctx", "2048", "--n_threads", str(threads), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("llama_cpp.server did not start in 120 s")


def one_way(
    index: Path, env: dict[str, str], questions: list[str], levels: tuple[int, ...]
) -> list[Any]:
    """Each number of clients in `levels` asking 3 questions each (at least 16 in all)."""
    rows = []
    with ServerProcess({**env, "RAG_MAX_QUEUE": "64"}, "--index", str(index)) as live:
        for clients in levels:
            count = max(16 if levels == CLIENTS else 0, 3 * clients)
            rows.append(asyncio.run(clients_asking(live.url, questions[:count], clients)))
            print(f"  {clients} clients: {rows[-1]['tokens_per_s']} tokens/s", file=sys.stderr)
    return rows


def same_alone_and_together(dataset: Path, n: int, slots: int = 4) -> dict[str, Any]:
    """n prompts as the service builds them, through one engine: each alone, then `slots` at
    a time; how many answers are the same text, and the pairs that are not."""
    from bench.generation import prompts
    from rag.llm.supervisor import EngineLLM
    from rag.prompt import Prompt
    from rag.settings import Settings

    engine = EngineLLM.from_settings(Settings(max_generations=slots))
    try:
        texts = [t.split("\n", 1)[1] for t in prompts(dataset, n, engine.count_tokens)]
        asked = [Prompt(text=t, question="", sources=(), context=t) for t in texts]
        alone = ["".join(engine.stream(p)) for p in asked]
        together: dict[int, str] = {}

        def answer(number: int) -> None:
            together[number] = "".join(engine.stream(asked[number]))

        for start in range(0, n, slots):
            batch = range(start, min(start + slots, n))
            threads = [threading.Thread(target=answer, args=(i,)) for i in batch]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(600)
    finally:
        engine.close()
    differ = [(a, together[i]) for i, a in enumerate(alone) if a != together.get(i)]
    return {"prompts": n, "slots": slots, "same": n - len(differ), "differ": differ[:20]}


def run(dataset: Path, quick: bool = False) -> dict[str, Any]:
    from bench.streaming import build_index
    from rag.cpu import read_cpu_flags, relevant_flags
    from rag.llm.gguf import default_model_path
    from rag.squad import load_articles, write_articles

    articles = load_articles(dataset)[:3]
    questions = [q.text for a in articles for q in a.questions][::7]
    threads = os.cpu_count() or 1
    levels = (1, 2) if quick else CLIENTS
    ways: dict[str, list[Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_articles(articles, Path(tmp) / "squad")
        build_index(Path(tmp) / "squad", Path(tmp) / "index")
        for name, env in WAYS.items():
            print(f"engine: {name}", file=sys.stderr)
            if env.get("RAG_LLM") == "openai":
                process, url = packaged_server(default_model_path(), threads)
                try:
                    env = {**env, "RAG_OPENAI_BASE_URL": url}
                    ways[name] = one_way(Path(tmp) / "index", env, questions, levels)
                finally:
                    process.kill()
                    process.wait()
            else:
                ways[name] = one_way(Path(tmp) / "index", env, questions, levels)
        print("engine: a lone client, in turn", file=sys.stderr)
        lone = lone_client_run(Path(tmp) / "index", questions[: 12 if quick else 60])
    return {
        "cpu": " ".join(relevant_flags(read_cpu_flags())),
        "cpus": threads,
        "ways": ways,
        "lone": lone,
        "compared": same_alone_and_together(dataset, 8 if quick else 100),
    }


def render(r: dict[str, Any]) -> str:
    base = {row["clients"]: row for row in r["ways"]["single slot (in-process)"]}
    rows = []
    for name, levels in r["ways"].items():
        for row in levels:
            ratio = row["tokens_per_s"] / base[row["clients"]]["tokens_per_s"]
            rows.append(
                [
                    name,
                    row["clients"],
                    row["tokens_per_s"],
                    round(ratio, 2),
                    row["requests_per_s"],
                    f"{row['ttft_p50_ms']:.0f} / {row['ttft_p95_ms']:.0f}",
                    f"{row['gap_p99_ms']:.0f}",
                ]
            )
    headers = ["way", "clients", "answer tokens/s", "x single slot", "requests/s"]
    headers += ["first token p50 / p95 (ms)", "gap p99 (ms)"]
    c = r["compared"]
    lone: dict[str, Any] = r.get("lone", {})
    inline: dict[str, Any] = next(iter(lone.values()), {})
    lone_rows = [
        [
            name,
            row["questions"],
            f"{row['ttft_p50_ms']:.0f} / {row['ttft_p95_ms']:.0f}",
            round(row["ttft_p50_ms"] / inline["ttft_p50_ms"], 3),
            row["decode_p50_ms"],
            round(row["decode_p50_ms"] / inline["decode_p50_ms"], 3),
        ]
        for name, row in lone.items()
    ]
    lone_headers = ["way", "questions", "first token p50 / p95 (ms)", "x in-process"]
    lone_headers += ["decode ms/token p50", "x in-process"]
    return "\n".join(
        [
            "## The LLM engine: answers decoded together",
            "",
            f"Gemma 3 270M Q4_K_M on {r['cpus']} cores ({r['cpu']}), squad-dev-a questions "
            "through `rag serve` (SSE), each client asking its next question when its answer "
            "ended; `llama_cpp.server` is reached through our `openai` backend (its own chat "
            "template: not the same prompt tokens).",
            "",
            *table(headers, "lrrrrrr", rows),
            "",
            f"Greedy answers decoded {c['slots']} at a time against the same prompts decoded "
            f"alone, through one engine: {c['same']} of {c['prompts']} the same text.",
            "",
            "A lone client, both servers up at once and asked each question in turn (which "
            "goes first alternates): what the engine process costs one user.",
            "",
            *table(lone_headers, "lrrrrr", lone_rows),
            "",
        ]
    )
