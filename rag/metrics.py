"""What the service counts, in Prometheus' terms (the official `prometheus-client`): requests,
answers and their timings, the generation queue, ingestion, the index served, memory. Label
values always come from fixed sets (route templates, outcomes, skip kinds), never from a
question, an id or a path a client chose.

One process keeps its counts in memory. Several `rag serve --workers` keep them in files under
`PROMETHEUS_MULTIPROC_DIR` (the library's multiprocess mode, which `rag serve` sets up), so one
scrape of any worker reports them all: counters and histograms summed, gauges summed over the
live workers (running, waiting, memory) or the most recent value (the index).
"""

from __future__ import annotations

import os
import re
import resource
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from rag.corpus import IngestReport
from rag.ingestion_metrics import IngestMetrics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "WEBSOCKET"})
OUTCOMES = ("done", "cancelled", "disconnected", "failed")
# a gauge over the live workers: the sum of their values, or the value set last
SUMMED: Final = "livesum"
LATEST: Final = "livemostrecent"
VERSION_TIME = re.compile(r"(\d{16,})")  # both stores name a version by time.time_ns()

# Buckets in seconds, from what the benchmarks measure on 2 cores: retrieval 5-50 ms, the first
# llama.cpp token 0.1-2 s (more when queued), tokens 20-60 ms apart, answers up to a minute.
RETRIEVAL_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FIRST_TOKEN_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
GAP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
ANSWER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
HTTP_BUCKETS = (0.001, 0.005, 0.025, 0.1, *ANSWER_BUCKETS[1:])  # health checks to long streams


def version_time_s(version: str | None) -> float:
    """version_time_s("v1764290000123456789") -> 1764290000.123...; 0.0 when it names none"""
    found = VERSION_TIME.search(version or "")
    return int(found.group(1)) / 1e9 if found else 0.0


def resident_memory_bytes() -> int:
    """This process's resident memory now (Linux: /proc), else its peak (getrusage)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes, Linux: kB


class Metrics:
    """The service's metrics in their own registry (so several apps in one process, as in the
    tests, never collide). With `enabled` false every method does nothing."""

    def __init__(self, enabled: bool = True, multiprocess_dir: Path | None = None) -> None:
        self.enabled = enabled
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http = RequestMetrics(r)
        self.answers = AnswerMetrics(r)
        self.service = ServiceGauges(r)
        self.ingest = IngestMetrics(r)

    @classmethod
    def from_environ(cls, enabled: bool, environ: Mapping[str, str]) -> Metrics:
        folder = environ.get(MULTIPROC_ENV)
        return cls(enabled, Path(folder) if folder else None)

    def request(self, route: str, method: str, status: int | None, seconds: float) -> None:
        if not self.enabled:
            return
        method = method if method in METHODS else "other"
        self.http.requests.labels(route, method, "none" if status is None else str(status)).inc()
        self.http.seconds.labels(route).observe(seconds)

    def retrieval(self, seconds: float) -> None:
        if self.enabled:
            self.answers.retrieval_seconds.observe(seconds)

    def token_gap(self, seconds: float) -> None:
        if self.enabled:
            self.answers.token_gap_seconds.observe(seconds)

    def answer(
        self,
        outcome: str,
        first_token_s: float | None = None,
        total_s: float | None = None,
        prompt_tokens: int = 0,
        answer_tokens: int = 0,
    ) -> None:
        """One answer ended; the timings and tokens are those of its `done` event, if any."""
        if not self.enabled:
            return
        self.answers.outcomes.labels(outcome if outcome in OUTCOMES else "failed").inc()
        if first_token_s is not None:
            self.answers.first_token_seconds.observe(first_token_s)
        if total_s is not None:
            self.answers.answer_seconds.observe(total_s)
        self.answers.prompt_tokens.inc(prompt_tokens)
        self.answers.answer_tokens.inc(answer_tokens)

    # the generation pool's watcher (see `rag.server.pool.PoolWatcher`)
    def occupancy(self, running: int, waiting: int) -> None:
        if self.enabled:
            self.service.running.set(running)
            self.service.waiting.set(waiting)

    def refused(self) -> None:
        if self.enabled:
            self.service.refusals.inc()

    def timed_out(self) -> None:
        if self.enabled:
            self.service.timeouts.inc()

    def ingested(self, report: IngestReport, source: str) -> None:
        """An ingest's report; `source` is "upload" or "cli"."""
        if self.enabled:
            self.ingest.record(report, source)

    def index(self, chunks: int, documents: int, version: str | None) -> None:
        if self.enabled:
            self.service.index_chunks.set(chunks)
            self.service.index_documents.set(documents)
            self.service.index_version.set(version_time_s(version))

    def sample_memory(self) -> None:
        if self.enabled:
            self.service.memory.set(resident_memory_bytes())

    def exposition(self) -> bytes:
        """Everything in the Prometheus text format: this process's metrics, or every
        worker's when they share a multiprocess folder."""
        self.sample_memory()
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        gathered = CollectorRegistry()
        folder = str(self.multiprocess_dir)
        MultiProcessCollector(gathered, path=folder)  # type: ignore[no-untyped-call]
        return generate_latest(gathered)

    def close(self) -> None:
        """This process stops: its live gauges leave the multiprocess sums."""
        if self.enabled and self.multiprocess_dir is not None:
            folder = str(self.multiprocess_dir)
            mark_process_dead(os.getpid(), folder)  # type: ignore[no-untyped-call]


class RequestMetrics:
    """Requests by route template, method and status, and how long they took."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "rag_http_requests",
            "HTTP requests (and WebSocket connections), by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "rag_http_request_duration_seconds",
            "Time from a request's arrival to its response's end (a whole stream), by route",
            ["route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )


class AnswerMetrics:
    """How answers ended, their timings and their tokens."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "rag_answers",
            "Answers by how they ended: done, cancelled (the client asked), disconnected "
            "(the client left mid-answer: its generation was cancelled), failed",
            ["outcome"],
            registry=registry,
        )
        self.retrieval_seconds = Histogram(
            "rag_retrieval_seconds",
            "Retrieval per question: query embedding, dense and BM25 search, fusion, prompt",
            buckets=RETRIEVAL_BUCKETS,
            registry=registry,
        )
        self.first_token_seconds = Histogram(
            "rag_time_to_first_token_seconds",
            "From a question's retrieval start to its answer's first token (queue wait "
            "included), for answers that produced one",
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self.token_gap_seconds = Histogram(
            "rag_inter_token_gap_seconds",
            "Time between two tokens of an answer, as the server relays them",
            buckets=GAP_BUCKETS,
            registry=registry,
        )
        self.answer_seconds = Histogram(
            "rag_answer_duration_seconds",
            "From a question's retrieval start to its answer's end (done or cancelled)",
            buckets=ANSWER_BUCKETS,
            registry=registry,
        )
        self.answer_tokens = Counter(
            "rag_answer_tokens", "Tokens generated, of answers that ended", registry=registry
        )
        self.prompt_tokens = Counter(
            "rag_prompt_tokens",
            "Prompt tokens read by the LLM, of answers that ended",
            registry=registry,
        )


class ServiceGauges:
    """The generation pool, refusals and timeouts, the index served, memory."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.running = Gauge(
            "rag_generations_running",
            "Answers being generated now",
            registry=registry,
            multiprocess_mode=SUMMED,
        )
        self.waiting = Gauge(
            "rag_generations_waiting",
            "Questions admitted and not yet generating (retrieving or queued for a slot)",
            registry=registry,
            multiprocess_mode=SUMMED,
        )
        self.refusals = Counter(
            "rag_refusals",
            "Questions refused with 429 because every generation slot and queue place was taken",
            registry=registry,
        )
        self.timeouts = Counter(
            "rag_generation_timeouts",
            "Generations stopped by RAG_GENERATION_TIMEOUT_S",
            registry=registry,
        )
        self.index_chunks = Gauge(
            "rag_index_chunks",
            "Chunks in the index being served",
            registry=registry,
            multiprocess_mode=LATEST,
        )
        self.index_documents = Gauge(
            "rag_index_documents",
            "Documents in the index being served",
            registry=registry,
            multiprocess_mode=LATEST,
        )
        self.index_version = Gauge(
            "rag_index_version_timestamp_seconds",
            "When the index version being served was written (Unix time)",
            registry=registry,
            multiprocess_mode=LATEST,
        )
        self.memory = Gauge(
            "rag_process_resident_memory_bytes",
            "Resident memory of the server's processes (summed over the workers)",
            registry=registry,
            multiprocess_mode=SUMMED,
        )


def prepare_multiprocess_dir(folder: Path) -> None:
    """Empty (or create) the folder the workers will share: counts left by an earlier run
    would otherwise be added to this one's."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)
