"""Streaming over HTTP: a live `rag serve` in its own process, clients timing every event.

- one client, N requests in a row (mock LLM): time to the sources event vs the server's own
  retrieval time, time to first token vs the server's own first-token time, and the gaps
  between tokens at the client vs the same mock generator run in-process (the reference);
- C concurrent clients (1, 8, 32, 64): every stream completes, p50/p99 inter-token gap, and
  /healthz latency meanwhile;
- llama.cpp (the default Gemma 270M), 4 clients at once: served one after another, prompt
  tokens, time to first token and total per client, /healthz meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

from bench import ROOT
from bench.live import ServerProcess, free_port
from bench.report import percentile, summary, table
from rag.llm.mock import MockLLM
from rag.prompt import Prompt
from rag.retrieval import Hit

QUESTIONS = [
    "Which team won Super Bowl 50?",
    "Where was Super Bowl 50 played?",
    "What did the Apollo program achieve?",
    "How did the Black Death spread?",
    "What is the Amazon rainforest?",
    "Who designed the Apollo spacecraft?",
]
DELAY_MS = 20


def server(index: Path, llm: str, *options: str, **env: str) -> ServerProcess:
    """`rag serve --index INDEX` with the `llm` backend (the mock at DELAY_MS per token), more
    `options` (e.g. --workers 2) and `env`: enter it to start it."""
    environment = {"RAG_LLM": llm, "RAG_MOCK_TOKEN_DELAY_MS": str(DELAY_MS), **env}
    return ServerProcess(environment, "--index", str(index), *options)


async def one_stream(client: httpx.AsyncClient, question: str) -> dict[str, Any]:
    """One /v1/ask over SSE, with the arrival time (ms since sending) of each event."""
    sent = time.perf_counter()
    arrivals: list[tuple[str, float, Any]] = []
    name = "message"
    async with client.stream("POST", "/v1/ask", json={"question": question}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                at = 1000 * (time.perf_counter() - sent)
                arrivals.append((name, at, json.loads(line[5:])))
    tokens = [at for kind, at, _ in arrivals if kind == "token"]
    done = arrivals[-1][2] if arrivals and arrivals[-1][0] == "done" else None
    return {
        "sources_ms": next((at for kind, at, _ in arrivals if kind == "sources"), None),
        "first_token_ms": tokens[0] if tokens else None,
        "gaps_ms": [b - a for a, b in pairwise(tokens)],
        "total_ms": arrivals[-1][1] if arrivals else None,
        "done": done,
        "completed": done is not None,
    }


def generator_gaps(n_tokens: int) -> list[float]:
    """The reference: the same mock generator, in-process, timed between its pieces."""
    from rag.chunks import Chunk

    text = "word " * n_tokens
    hit = Hit(1, 1.0, Chunk("x#0", "x", "x", 0, 0, len(text), text, ""))
    llm = MockLLM(delay_s=DELAY_MS / 1000, reply=text)
    stamps = [time.perf_counter() for _ in llm.stream(Prompt("", "", (hit,), ""))]
    return [1000 * (b - a) for a, b in pairwise(stamps)]


async def in_a_row(url: str, n: int) -> list[dict[str, Any]]:
    """n requests one after another from one client (after one to warm up)."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await one_stream(client, QUESTIONS[0])
        return [await one_stream(client, QUESTIONS[i % len(QUESTIONS)]) for i in range(n)]


async def sequential(url: str, n: int) -> dict[str, Any]:
    results = await in_a_row(url, n)
    sources_extra = [r["sources_ms"] - r["done"]["timings"]["retrieval_ms"] for r in results]
    ttft_extra = [r["first_token_ms"] - r["done"]["timings"]["ttft_ms"] for r in results]
    gaps = [g for r in results for g in r["gaps_ms"]]
    reference = generator_gaps(200)
    return {
        "requests": n,
        "retrieval_ms": summary([r["done"]["timings"]["retrieval_ms"] for r in results]),
        "sources_at_client_ms": summary([r["sources_ms"] for r in results]),
        "sources_after_retrieval_ms": summary(sources_extra),
        "server_ttft_ms": summary([r["done"]["timings"]["ttft_ms"] for r in results]),
        "client_ttft_ms": summary([r["first_token_ms"] for r in results]),
        "ttft_overhead_ms": summary(ttft_extra),
        "client_gap_ms": summary(gaps),
        "generator_gap_ms": summary(reference),
        "gap_p99_difference_ms": round(percentile(gaps, 0.99) - percentile(reference, 0.99), 2),
    }


# The reference for our overhead: the least FastAPI can do to stream the same mock tokens as
# SSE, with no retrieval, no pool, no worker thread, no SSE library.
BASELINE = """
import asyncio, json, sys
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from rag.llm.mock import pieces

app = FastAPI()

@app.post("/v1/ask")
async def ask() -> StreamingResponse:
    async def events():
        for piece in pieces(sys.argv[3]):
            await asyncio.sleep(int(sys.argv[2]) / 1000)
            yield f"event: token\\ndata: {json.dumps({'text': piece})}\\n\\n"
        yield "event: done\\ndata: {}\\n\\n"
    return StreamingResponse(events(), media_type="text/event-stream")

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@contextmanager
def baseline_server(reply: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-c", BASELINE, str(port), str(DELAY_MS), reply]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/docs", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the baseline server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(30)


async def streams_of(url: str, n: int) -> dict[str, Any]:
    """n requests in a row from one client: time to first token and gaps at the client."""
    results = await in_a_row(url, n)
    gaps = [g for r in results for g in r["gaps_ms"]]
    return {
        "first_token_ms": summary([r["first_token_ms"] for r in results]),
        "gap_ms": summary(gaps),
        "tokens": len(gaps) + len(results),
    }


def overhead(url: str, n: int) -> dict[str, Any]:
    """Our SSE path (retrieval, pool, worker thread, sse-starlette) vs the minimal
    StreamingResponse of the same mock tokens, asked the same way, in the same run."""
    ours = asyncio.run(streams_of(url, n))
    reply = (
        "According to [1], Super Bowl 50 was an American football game to determine the champion."
    )
    with baseline_server(reply) as base_url:
        base = asyncio.run(streams_of(base_url, n))
    return {
        "requests": n,
        "ours": ours,
        "baseline": base,
        "first_token_ratio": round(
            ours["first_token_ms"]["p50"] / base["first_token_ms"]["p50"], 2
        ),
        "gap_p50_ratio": round(ours["gap_ms"]["p50"] / base["gap_ms"]["p50"], 3),
        "gap_p99_ratio": round(ours["gap_ms"]["p99"] / base["gap_ms"]["p99"], 3),
    }


PROBE = """
import sys, time, httpx
with httpx.Client(base_url=sys.argv[1], timeout=10) as client:
    while True:
        started = time.perf_counter()
        client.get("/healthz").raise_for_status()
        print(1000 * (time.perf_counter() - started), flush=True)
        time.sleep(0.02)
"""


@contextmanager
def health_probe(url: str) -> Iterator[list[float]]:
    """/healthz latency, sampled every 20 ms from its own process (so the load-generating
    clients' event loop does not delay the probe and inflate what it reports)."""
    samples: list[float] = []
    process = subprocess.Popen(
        [sys.executable, "-c", PROBE, url], stdout=subprocess.PIPE, text=True
    )
    try:
        yield samples
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
        samples.extend(float(line) for line in out.split())


async def concurrent(url: str, clients: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        with health_probe(url) as health:
            started = time.perf_counter()
            results = await asyncio.gather(
                *(one_stream(client, QUESTIONS[i % len(QUESTIONS)]) for i in range(clients)),
                return_exceptions=True,
            )
            seconds = time.perf_counter() - started
    ok = [r for r in results if isinstance(r, dict) and r["completed"]]
    gaps = [g for r in ok for g in r["gaps_ms"]]
    return {
        "clients": clients,
        "completed": len(ok),
        "seconds": round(seconds, 2),
        "client_ttft_ms": summary([r["first_token_ms"] for r in ok]),
        "gap_ms": summary(gaps),
        "healthz_ms": summary(health),
    }


async def llamacpp_clients(url: str, clients: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        await one_stream(client, QUESTIONS[0])  # loads the KV cache of the fixed prompt head
        with health_probe(url) as health:
            results = await asyncio.gather(
                *(one_stream(client, QUESTIONS[i % len(QUESTIONS)]) for i in range(clients))
            )
    return {
        "clients": clients,
        "completed": sum(r["completed"] for r in results),
        "per_client": [
            {
                "prompt_tokens": r["done"]["usage"]["prompt_tokens"],
                "completion_tokens": r["done"]["usage"]["completion_tokens"],
                "sources_ms": round(r["sources_ms"], 1),
                "first_token_ms": round(r["first_token_ms"], 1),
                "total_ms": round(r["total_ms"], 1),
            }
            for r in sorted(results, key=lambda r: r["first_token_ms"])
        ],
        "healthz_ms": summary(health),
    }


async def first_word_json(client: httpx.AsyncClient, question: str) -> tuple[float, float]:
    """`stream: false`: the user sees the first word when the whole answer has arrived."""
    sent = time.perf_counter()
    response = await client.post("/v1/ask", json={"question": question, "stream": False})
    response.raise_for_status()
    total = 1000 * (time.perf_counter() - sent)
    return total, total


async def first_word_sse(client: httpx.AsyncClient, question: str) -> tuple[float, float]:
    result = await one_stream(client, question)
    return result["first_token_ms"], result["total_ms"]


async def first_word_ws(url: str, question: str) -> tuple[float, float]:
    from websockets.asyncio.client import connect

    sent = time.perf_counter()
    first = None
    async with connect(url.replace("http", "ws", 1) + "/v1/ws") as ws:
        await ws.send(json.dumps({"question": question}))
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "token" and first is None:
                first = 1000 * (time.perf_counter() - sent)
            if message["type"] in {"done", "error"}:
                return first or 0.0, 1000 * (time.perf_counter() - sent)


async def transports(url: str, questions: list[str]) -> dict[str, Any]:
    """REST (one JSON) vs SSE vs WebSocket, same questions in turn: when the user sees the
    first word, and the whole answer."""
    seen: dict[str, list[tuple[float, float]]] = {"json": [], "sse": [], "websocket": []}
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        await first_word_sse(client, "What is this corpus about?")  # warm the caches
        # one transport through all the questions, then the next: consecutive prompts always
        # differ, so no transport is served from the KV cache of the same question
        for question in questions:
            seen["json"].append(await first_word_json(client, question))
        for question in questions:
            seen["sse"].append(await first_word_sse(client, question))
        for question in questions:
            seen["websocket"].append(await first_word_ws(url, question))
    return {
        name: {
            "first_word_ms": summary([f for f, _ in pairs]),
            "whole_answer_ms": summary([t for _, t in pairs]),
        }
        for name, pairs in seen.items()
    }


def build_index(corpus: Path, index: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "rag", "ingest", str(corpus), "--index", str(index), "--quiet"],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        build_index(ROOT / "data", index)
        levels = [1, 8] if quick else [1, 8, 32, 64]
        with server(index, "mock", RAG_MAX_GENERATIONS="64", RAG_MAX_QUEUE="256") as live:
            url = live.url
            result: dict[str, Any] = {
                "mock_delay_ms": DELAY_MS,
                "sequential": asyncio.run(sequential(url, 10 if quick else 100)),
                "concurrent": [asyncio.run(concurrent(url, c)) for c in levels],
                "overhead": overhead(url, 10 if quick else 50),
            }
        if not quick:
            with server(index, "llamacpp", RAG_MAX_GENERATIONS="1") as live:
                url = live.url
                result["llamacpp"] = asyncio.run(llamacpp_clients(url, 4))
                result["transports"] = asyncio.run(transports(url, QUESTIONS))
    result["machine"] = {"cpus": os.cpu_count()}
    return result


def p50_max(s: dict[str, Any]) -> list[object]:
    return [s["p50"], s["max"]]


def p50_p99(s: dict[str, Any], between: str = " / ") -> str:
    return f"{s['p50']}{between}{s['p99']}"


def render_transports(t: dict[str, Any]) -> str:
    lines = [
        "## REST vs SSE vs WebSocket: when does the user see the first word?",
        "",
        f"llama.cpp (Gemma 3 270M) on 2 cores, the same {t['sse']['first_word_ms']['n']} "
        "questions through each transport (ms; p50 and max over the questions). Same server, "
        "same answers: only when the words reach the user differs.",
        "",
    ]
    names = {"json": "REST, `stream: false`", "sse": "SSE", "websocket": "WebSocket"}
    header = ["transport", "first word p50", "first word max"]
    lines += table(
        [*header, "whole answer p50", "whole answer max"],
        "lrrrr",
        (
            [label, *p50_max(t[key]["first_word_ms"]), *p50_max(t[key]["whole_answer_ms"])]
            for key, label in names.items()
        ),
    )
    return "\n".join(lines) + "\n"


def render(r: dict[str, Any]) -> str:
    s = r["sequential"]
    lines = [
        "## Streaming over HTTP",
        "",
        f"A live `rag serve` (own process, MiniLM retrieval over `data/`), mock LLM at "
        f"{r['mock_delay_ms']} ms per token; clients time each SSE event. Produced by "
        "`python -m bench --only streaming`.",
        "",
        f"One client, {s['requests']} requests in a row (ms, p50 / p99):",
        "",
        *table(
            ["", "p50", "p99"],
            "lrr",
            (
                [label, s[key]["p50"], s[key]["p99"]]
                for label, key in [
                    ("server retrieval time", "retrieval_ms"),
                    ("sources event at the client", "sources_at_client_ms"),
                    ("**sources event after retrieval**", "sources_after_retrieval_ms"),
                    ("server time to first token", "server_ttft_ms"),
                    ("client time to first token", "client_ttft_ms"),
                    ("**first token: client minus server**", "ttft_overhead_ms"),
                    ("gap between tokens, generator in-process", "generator_gap_ms"),
                    ("gap between tokens at the client", "client_gap_ms"),
                ]
            ),
        ),
        "",
        f"Inter-token gap, client p99 minus generator p99: **{s['gap_p99_difference_ms']} ms**.",
        "",
        "Concurrent clients (generation limit raised to 64 for the mock):",
        "",
    ]
    lines += table(
        ["clients", "completed", "first token p50 / p99", "gap p50 / p99", "/healthz p50 / p99"],
        "rrrrr",
        (
            [
                c["clients"],
                c["completed"],
                p50_p99(c["client_ttft_ms"]),
                p50_p99(c["gap_ms"]),
                p50_p99(c["healthz_ms"]),
            ]
            for c in r["concurrent"]
        ),
    )
    if "overhead" in r:
        o = r["overhead"]
        lines += [
            "",
            f"Our overhead: the same client, {o['requests']} requests in a row, against our "
            "`/v1/ask` and against a minimal FastAPI `StreamingResponse` that streams the same "
            "mock tokens at the same pace with no retrieval, pool or SSE library (ms, p50 / p99):",
            "",
            *table(
                ["", "first token", "gap between tokens"],
                "lrr",
                [
                    *(
                        [label, p50_p99(o[key]["first_token_ms"]), p50_p99(o[key]["gap_ms"])]
                        for label, key in [
                            ("ours", "ours"),
                            ("minimal StreamingResponse", "baseline"),
                        ]
                    ),
                    [
                        "**ratio, ours / minimal**",
                        f"{o['first_token_ratio']} (p50)",
                        f"{o['gap_p50_ratio']} (p50), {o['gap_p99_ratio']} (p99)",
                    ],
                ],
            ),
            "",
            "The first-token difference is mostly retrieval (question embedding, FAISS, BM25), "
            "which the minimal server does not do; between tokens the two are level.",
        ]
    if "llamacpp" in r:
        ll = r["llamacpp"]
        lines += [
            "",
            f"llama.cpp (Gemma 3 270M), {ll['clients']} clients at once, one generation at a "
            f"time; /healthz meanwhile p50 {ll['healthz_ms']['p50']} ms, p99 "
            f"{ll['healthz_ms']['p99']} ms:",
            "",
        ]
        header = ["client", "prompt tokens", "answer tokens", "sources (ms)"]
        fields = ["prompt_tokens", "completion_tokens", "sources_ms", "first_token_ms", "total_ms"]
        lines += table(
            [*header, "first token (ms)", "total (ms)"],
            "rrrrrr",
            ([i, *(c[f] for f in fields)] for i, c in enumerate(ll["per_client"], start=1)),
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = run(quick="--quick" in sys.argv)
    print(json.dumps(out, indent=1))
    print(render(out))
