"""What the Prometheus metrics cost: the soak (mock LLM at 0 ms per token, 8 clients at a time,
requests pushed through as fast as they go) against two live servers over the same index, one
with `RAG_METRICS=0` and one with the metrics on and scraped every second (Prometheus' default
interval is 15 s or more: this is the heavy case), in alternating rounds. Reported: requests/s
and the first token's p50 and p99 as the clients see them, on over off per pair of rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from bench import ROOT
from bench.report import percentile, spread, table
from bench.streaming import QUESTIONS, build_index, server

ROUNDS, REQUESTS, CONCURRENCY = 6, 400, 8
SCRAPE_EVERY_S = 1.0


async def first_token_ms(client: httpx.AsyncClient, question: str) -> float | None:
    """One /v1/ask read to its end; when its first token arrived (None: none came)."""
    sent = time.perf_counter()
    first = None
    async with client.stream("POST", "/v1/ask", json={"question": question}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line == "event: token":
                first = 1000 * (time.perf_counter() - sent)
    return first


@contextlib.asynccontextmanager
async def scraping(url: str | None) -> AsyncIterator[list[int]]:
    """Scrape `url`/metrics every SCRAPE_EVERY_S while the block runs; yields the sizes read."""
    sizes: list[int] = []
    if url is None:
        yield sizes
        return

    async def scrape() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while True:
                response = await client.get("/metrics")
                response.raise_for_status()
                sizes.append(len(response.content))
                await asyncio.sleep(SCRAPE_EVERY_S)

    task = asyncio.create_task(scrape())
    try:
        yield sizes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def one_round(url: str, requests: int, scrape: bool) -> dict[str, Any]:
    gate = asyncio.Semaphore(CONCURRENCY)
    firsts: list[float] = []
    failed = 0
    limits = httpx.Limits(max_connections=CONCURRENCY, keepalive_expiry=2.0)
    async with (
        httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client,
        scraping(url if scrape else None) as sizes,
    ):

        async def one(number: int) -> None:
            nonlocal failed
            async with gate:
                try:
                    first = await first_token_ms(client, QUESTIONS[number % len(QUESTIONS)])
                except httpx.HTTPError:
                    first = None
                if first is None:
                    failed += 1
                else:
                    firsts.append(first)

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(requests)))
        seconds = time.perf_counter() - started
    return {
        "requests_per_s": round(requests / seconds, 2),
        "first_token_p50_ms": round(percentile(firsts, 0.5), 2),
        "first_token_p99_ms": round(percentile(firsts, 0.99), 2),
        "failed": failed,
        "scrapes": len(sizes),
        "scrape_bytes": max(sizes, default=0),
    }


def work_per_answer_us(tokens: int, repeats: int = 20_000) -> dict[str, float]:
    """The recording one answer costs in-process (a request, its retrieval, `tokens` gaps, its
    end, four pool changes), in microseconds, metrics on and off: the part of the soak's
    difference that is not noise."""
    from rag.metrics import Metrics

    cost = {}
    for name, metrics in (("on", Metrics()), ("off", Metrics(enabled=False))):
        started = time.perf_counter()
        for _ in range(repeats):
            metrics.request("/v1/ask", "POST", 200, 0.05)
            metrics.retrieval(0.004)
            for _ in range(4):
                metrics.occupancy(1, 0)
            for _ in range(tokens - 1):
                metrics.token_gap(0.001)
            metrics.answer("done", 0.01, 0.05, 150, tokens)
        cost[name] = round(1e6 * (time.perf_counter() - started) / repeats, 2)
    return cost


def run(quick: bool = False) -> dict[str, Any]:
    rounds, requests = (2, 100) if quick else (ROUNDS, REQUESTS)
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        build_index(ROOT / "data", index)
        fast = {"RAG_MOCK_TOKEN_DELAY_MS": "0"}
        with (
            server(index, "mock", RAG_METRICS="0", **fast) as off,
            server(index, "mock", RAG_METRICS="1", **fast) as on,
        ):
            asyncio.run(one_round(off.url, 50, False))  # warm both up: first requests load
            asyncio.run(one_round(on.url, 50, False))
            for number in range(rounds):  # alternate which goes first
                order = [("off", off.url), ("on", on.url)]
                for name, url in order if number % 2 == 0 else order[::-1]:
                    runs[name].append(asyncio.run(one_round(url, requests, name == "on")))
    tokens = 12  # the mock's answers to QUESTIONS are about this long
    ratios = {
        key: [round(b[key] / a[key], 4) for a, b in zip(runs["off"], runs["on"], strict=True)]
        for key in ("requests_per_s", "first_token_p50_ms", "first_token_p99_ms")
    }
    return {
        "rounds": rounds,
        "requests": requests,
        "concurrency": CONCURRENCY,
        "scrape_every_s": SCRAPE_EVERY_S,
        "runs": runs,
        "ratios": ratios,
        "median_ratio": {key: round(statistics.median(v), 4) for key, v in ratios.items()},
        "tokens_per_answer": tokens,
        "work_per_answer_us": work_per_answer_us(tokens, 2000 if quick else 20_000),
    }


def render(r: dict[str, Any]) -> str:
    off, on, ratios = r["runs"]["off"], r["runs"]["on"], r["ratios"]

    def column(runs: list[dict[str, Any]], key: str) -> str:
        return spread([run[key] for run in runs], "{:.1f}")

    rows = [
        [
            label,
            column(off, key),
            column(on, key),
            spread(ratios[key], "{:.3f}"),
        ]
        for label, key in (
            ("requests/s", "requests_per_s"),
            ("first token p50 (ms)", "first_token_p50_ms"),
            ("first token p99 (ms)", "first_token_p99_ms"),
        )
    ]
    failed = sum(run["failed"] for run in off + on)
    work = r["work_per_answer_us"]
    per_request_us = 1e6 / statistics.median(run["requests_per_s"] for run in off)
    share = (work["on"] - work["off"]) / per_request_us
    scrapes = sum(run["scrapes"] for run in on)
    return "\n".join(
        [
            "## What the metrics cost",
            "",
            f"The soak against two live `rag serve` over `data/` (mock LLM at 0 ms per token, "
            f"{r['concurrency']} clients at a time), one with `RAG_METRICS=0`, one with metrics "
            f"on and `/metrics` scraped every {r['scrape_every_s']:g} s; {r['rounds']} rounds "
            f"of {r['requests']} requests each, alternating which server goes first. Median "
            "(min-max) over the rounds; the ratio is on over off, per pair of rounds. Produced "
            "by `python -m bench --only metrics`.",
            "",
            *table(["", "metrics off", "metrics on", "on / off"], "lrrr", rows),
            "",
            f"{failed} requests failed; {scrapes} scrapes of up to "
            f"{max((run['scrape_bytes'] for run in on), default=0):,} bytes during the runs. "
            f"Timed in-process, the recording of one answer of {r['tokens_per_answer']} tokens "
            f"(its request, retrieval, token gaps, end and pool changes) takes "
            f"{work['on']} µs with metrics on and {work['off']} µs off: "
            f"{100 * share:.2f}% of the server's time per request at the soak's median rate "
            f"with metrics off ({per_request_us:,.0f} µs per request).",
            "",
        ]
    )
