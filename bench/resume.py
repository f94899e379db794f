"""What resumable answers cost. Every streamed answer now goes through a kept event log (ids on
its events, a task producing into the log, the response following it):

- memory: the bytes one ended answer keeps while it stays replayable (its events: the sources
  with their text, the tokens, `done`), measured with tracemalloc over a few hundred;
- the log by itself, in-process: the time each event takes through a `KeptAnswer` (logged by a
  producer task, read by a follower) against the same events from a plain async generator;
- live, against "today": the same questions to this checkout's `rag serve` and to the commit
  before the log (`BASELINE`, checked out with `git worktree`, same environment), in
  alternating rounds (mock LLM at 20 ms per token): time to the first token and inter-token
  gaps at the client, p50 and p99.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import threading
import time
import tracemalloc
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx

from bench import ROOT
from bench.baseline import checkout, ingest
from bench.live import ServerProcess
from bench.report import percentile, table
from bench.streaming import DELAY_MS, QUESTIONS, build_index, one_stream

BASELINE = "087263c"  # the last commit before the answer log
ROUNDS, QUESTIONS_PER_ROUND = 4, 24
KEPT = 300


def sample_events(text: str, tokens: int = 48) -> list[Any]:
    """An answer's events as the server keeps them: one source of `text`, `tokens` tokens."""
    from rag.answer import Done, Sources, Token
    from rag.chunks import Chunk
    from rag.retrieval import Hit

    chunk = Chunk("data/doc.md#3", "data/doc.md", "A document", 3, 0, len(text), text, "")
    sources = Sources((Hit(1, 1.0, chunk, 0.71, 6.2),))
    words = [Token(f" word{n}") for n in range(tokens)]
    return [sources, *words, Done(200, tokens, 8.0, 60.0, 1200.0, answer_id="a" * 32)]


def memory_per_answer(text: str, answers: int = KEPT) -> float:
    """Bytes one ended, kept answer holds (its log, events and their strings)."""
    from rag.server.answer_log import AnswerBook, new_answer_id

    async def fill() -> AnswerBook:
        book = AnswerBook(max_answers=answers * 2, ttl_s=3600)

        async def events() -> AsyncGenerator[Any, None]:
            for event in sample_events(text):  # fresh objects per answer, as the server makes
                yield event

        for _ in range(answers):
            kept = book.start(new_answer_id(), events(), threading.Event(), 0.0)
            assert kept.task is not None
            await kept.task
        return book

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    book = asyncio.run(fill())
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(book) == answers
    return grown / answers


def per_event_us(events: int = 20_000) -> dict[str, float]:
    """Microseconds per event: through a KeptAnswer (producer task -> log -> follower) and from
    a plain async generator, each event awaited as a slow producer would make it."""
    from rag.answer import Token
    from rag.server.answer_log import AnswerBook, new_answer_id

    async def produce() -> AsyncGenerator[Any, None]:
        for n in range(events):
            await asyncio.sleep(0)  # the producer waits for each token, as pool.stream does
            yield Token(f"t{n}")

    async def direct() -> float:
        started = time.perf_counter()
        async for _ in produce():
            pass
        return time.perf_counter() - started

    async def logged() -> float:
        book = AnswerBook(10, 60)
        started = time.perf_counter()
        kept = book.start(new_answer_id(), produce(), threading.Event(), 0.0)
        async for _ in kept.follow():
            pass
        return time.perf_counter() - started

    times: dict[str, list[float]] = {"direct": [], "log": []}
    for _ in range(3):
        times["direct"].append(asyncio.run(direct()))
        times["log"].append(asyncio.run(logged()))
    return {name: round(1e6 * min(v) / events, 2) for name, v in times.items()}


class TimedWrites:
    """A shared log that times each batch written (the mirror's cost)."""

    def __init__(self, shared: Any) -> None:
        self.shared = shared
        self.seconds: list[float] = []
        self.events = 0

    def record(self, answer_id: str, events: Any, ended: bool) -> bool:
        started = time.perf_counter()
        asked = bool(self.shared.record(answer_id, events, ended))
        self.seconds.append(time.perf_counter() - started)
        self.events += len(events)
        return asked

    def __getattr__(self, name: str) -> Any:
        return getattr(self.shared, name)


def mirror_cost(answers: int, tokens: int = 48, token_s: float = DELAY_MS / 1000) -> dict[str, Any]:
    """Answers of `tokens` tokens, one every `token_s`, kept with a PostgreSQL log (pgserver):
    how many writes each answer takes (batched every `BATCH_S`) and how long a write takes."""
    from bench.postgres import postgres
    from rag.answer import Token
    from rag.server.answer_log import AnswerBook, new_answer_id
    from rag.server.answer_mirror import BATCH_S
    from rag.settings import Settings
    from rag.stores.pgvector import PostgresStore

    async def answer(book: AnswerBook) -> None:
        async def produce() -> AsyncGenerator[Any, None]:
            for n in range(tokens):
                await asyncio.sleep(token_s)
                yield Token(f" t{n}")

        kept = book.start(new_answer_id(), produce(), threading.Event(), 0.0)
        async for _ in kept.follow():
            pass
        while book.mirroring:  # the last batch
            await asyncio.sleep(0.01)

    with postgres() as url:
        store = PostgresStore(Settings(store="pgvector", database_url=url))
        store.version()  # creates the tables
        timed = TimedWrites(store.shared_answers())
        for _ in range(answers):
            asyncio.run(answer(AnswerBook(10, 60, timed)))
        store.close()
    return {
        "answers": answers,
        "tokens": tokens,
        "batch_s": BATCH_S,
        "writes_per_answer": round(len(timed.seconds) / answers, 1),
        "events_per_write": round(timed.events / max(1, len(timed.seconds)), 2),
        "write_ms_p50": round(1000 * percentile(timed.seconds, 0.5), 2),
        "write_ms_p99": round(1000 * percentile(timed.seconds, 0.99), 2),
    }


async def one_round(url: str, n: int) -> dict[str, list[float]]:
    firsts: list[float] = []
    gaps: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for number in range(n):  # one at a time: the path's own latency, no queueing
            got = await one_stream(client, QUESTIONS[number % len(QUESTIONS)])
            if got["first_token_ms"] is not None:
                firsts.append(got["first_token_ms"])
            gaps.extend(got["gaps_ms"])
    return {"first_token_ms": firsts, "gaps_ms": gaps}


def live(
    index: Path, old_index: Path, baseline: Path, rounds: int, per_round: int
) -> dict[str, Any]:
    """The same questions to this checkout's server and the baseline's, each on an index its
    own code built, in alternating rounds."""
    env = {"RAG_LLM": "mock", "RAG_MOCK_TOKEN_DELAY_MS": str(DELAY_MS)}
    runs: dict[str, dict[str, list[float]]] = {
        "today": {"first_token_ms": [], "gaps_ms": []},
        "log": {"first_token_ms": [], "gaps_ms": []},
    }
    old = {**env, "PYTHONPATH": str(baseline)}
    with (
        ServerProcess(old, "--index", str(old_index), cwd=baseline) as before,
        ServerProcess(env, "--index", str(index)) as now,
    ):
        with httpx.Client(timeout=30) as client:  # which code each one runs, checked
            probe = {"question": QUESTIONS[0]}
            assert "x-answer-id" not in client.post(f"{before.url}/v1/ask", json=probe).headers
            assert "x-answer-id" in client.post(f"{now.url}/v1/ask", json=probe).headers
        for number in range(rounds):
            order = [("today", before.url), ("log", now.url)]
            for name, url in order if number % 2 == 0 else order[::-1]:
                got = asyncio.run(one_round(url, per_round))
                for key, values in got.items():
                    runs[name][key].extend(values)
    return {
        name: {
            key: {"p50": round(percentile(v, 0.5), 2), "p99": round(percentile(v, 0.99), 2)}
            for key, v in measured.items()
        }
        for name, measured in runs.items()
    }


def run(quick: bool = False) -> dict[str, Any]:
    text = (ROOT / "data").glob("*.md").__next__().read_text()[:1200]  # a chunk's worth
    result: dict[str, Any] = {
        "kept_answer_bytes": round(memory_per_answer(text, 50 if quick else KEPT)),
        "source_chars": len(text),
        "per_event_us": per_event_us(2000 if quick else 20_000),
        "mirror": mirror_cost(2 if quick else 20),
        "baseline": BASELINE,
        "mock_delay_ms": DELAY_MS,
    }
    with tempfile.TemporaryDirectory() as tmp, checkout(BASELINE, Path(tmp)) as baseline:
        if baseline is None:
            result["live"] = {"error": f"git could not check out {BASELINE} here"}
            return result
        index, old_index = Path(tmp) / "index", Path(tmp) / "old-index"
        build_index(ROOT / "data", index)
        ingest(ROOT / "data", old_index, code=baseline)  # an index format it reads
        rounds, per_round = (2, 6) if quick else (ROUNDS, QUESTIONS_PER_ROUND)
        result["live"] = live(index, old_index, baseline, rounds, per_round)
        result["rounds"], result["questions_per_round"] = rounds, per_round
    return result


def render(r: dict[str, Any]) -> str:
    lines = [
        "## What resumable answers cost",
        "",
        "Every streamed answer goes through a kept event log (ids on its events, a producer "
        "task, the response following the log). Produced by `python -m bench --only resume`.",
        "",
        f"- Memory: an ended answer kept for replay holds {r['kept_answer_bytes']:,} bytes "
        f"(one source of {r['source_chars']:,} characters, 48 tokens and `done`; tracemalloc "
        f"over kept answers), so the default cap of 500 kept answers is about "
        f"{500 * r['kept_answer_bytes'] / 2**20:.1f} MB.",
        f"- The log by itself, in-process: {r['per_event_us']['log']} µs per event through a "
        f"kept answer against {r['per_event_us']['direct']} µs from a plain async generator "
        f"(against {r['mock_delay_ms']} ms between tokens here, 25-30 ms with Gemma on 2 cores).",
    ]
    if "mirror" in r:
        m = r["mirror"]
        lines.append(
            f"- Shared through PostgreSQL (the pgvector store, so any worker can replay): "
            f"{m['answers']} answers of {m['tokens']} tokens at {r['mock_delay_ms']} ms each "
            f"took {m['writes_per_answer']} writes per answer ({m['events_per_write']} events "
            f"per write, batched every {1000 * m['batch_s']:g} ms), {m['write_ms_p50']} ms "
            f"p50 / {m['write_ms_p99']} ms p99 per write, off the event loop."
        )
    live = r.get("live", {})
    if "error" in live:
        return "\n".join([*lines, f"- Live: not run: {live['error']}.", ""])
    rows = [
        [
            label,
            f"{live['today'][key]['p50']} / {live['today'][key]['p99']}",
            f"{live['log'][key]['p50']} / {live['log'][key]['p99']}",
            f"{live['log'][key]['p50'] / live['today'][key]['p50']:.3f}",
        ]
        for label, key in (("first token (ms)", "first_token_ms"), ("gap (ms)", "gaps_ms"))
    ]
    return "\n".join(
        [
            *lines,
            f"- Live, one question at a time against two `rag serve` over `data/` (mock LLM at "
            f"{r['mock_delay_ms']} ms per token), {r['rounds']} alternating rounds of "
            f"{r['questions_per_round']} questions each: the commit before the log "
            f'(`{r["baseline"]}`, "today") and this one.',
            "",
            *table(
                ["", "before the log p50 / p99", "with it p50 / p99", "p50 ratio"], "lrrr", rows
            ),
            "",
        ]
    )
