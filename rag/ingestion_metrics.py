"""What ingests did, in Prometheus' terms: files by result, skipped ones by kind of reason (a
fixed set, whatever the reason's words), chunks embedded, seconds. The server counts its
uploads among its other metrics (`rag.metrics`); one `rag ingest` run writes its own for
node_exporter's textfile collector (`write_textfile`).
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile

from rag.corpus import IngestReport

# Skip reasons are sentences (with a byte offset, a path...): each is counted under the kind its
# opening words name; anything else is "other", so the label set stays fixed.
SKIP_KINDS: tuple[tuple[str, str], ...] = (
    ("no such file", "missing"),
    ("a symbolic link to a file outside", "outside_link"),
    ("unsupported file type", "unsupported_type"),
    ("empty file", "empty"),
    ("no text content", "no_text"),
    ("PDF has no extractable text", "no_text"),
    ("binary content", "binary"),
    ("not valid UTF-", "encoding"),
    ("encrypted PDF", "encrypted"),
    ("an encrypted", "encrypted"),
    ("a password-protected", "encrypted"),
    ("unreadable", "unreadable"),
    ("a compressed stream in the PDF inflates", "bomb"),
    ("its parts inflate", "bomb"),
    ("OCR", "ocr"),
    ("PDF has no text, even by OCR", "no_text"),
    ("not in the index", "not_indexed"),
)
INGEST_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)  # seconds


def skip_kind(reason: str) -> str:
    """skip_kind("not valid UTF-8 (byte 3)") -> 'encoding'; an unknown reason -> 'other'"""
    for opening, kind in SKIP_KINDS:
        if reason.startswith(opening):
            return kind
    return "other"


class IngestMetrics:
    """What ingests did: by the server (uploads) among its other metrics, or by one
    `rag ingest` run, written for node_exporter's textfile collector (`write_textfile`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ingests = Counter(
            "rag_ingests", "Ingests run (uploads, or `rag ingest`)", ["source"], registry=registry
        )
        self.ingest_files = Counter(
            "rag_ingest_files",
            "Files an ingest looked at, by what it did with them",
            ["source", "result"],
            registry=registry,
        )
        self.ingest_skipped = Counter(
            "rag_ingest_skipped_files",
            "Files an ingest could not read, by kind of reason",
            ["source", "reason"],
            registry=registry,
        )
        self.ingest_chunks = Counter(
            "rag_ingest_chunks_embedded",
            "Chunks embedded by ingests (unchanged files' chunks are reused, not counted)",
            ["source"],
            registry=registry,
        )
        self.ingest_seconds = Histogram(
            "rag_ingest_duration_seconds",
            "Time one ingest took",
            ["source"],
            buckets=INGEST_BUCKETS,
            registry=registry,
        )

    def record(self, report: IngestReport, source: str) -> None:
        self.ingests.labels(source).inc()
        for result in ("added", "changed", "removed", "unchanged"):
            self.ingest_files.labels(source, result).inc(len(getattr(report, result)))
        self.ingest_files.labels(source, "skipped").inc(len(report.skipped))
        for skipped in report.skipped:
            self.ingest_skipped.labels(source, skip_kind(skipped.reason)).inc()
        self.ingest_chunks.labels(source).inc(report.n_embedded)
        self.ingest_seconds.labels(source).observe(report.seconds)


def write_textfile(report: IngestReport, path: Path) -> None:
    """One `rag ingest` run's metrics, with the time it ended, as a file node_exporter's
    textfile collector reads (written to a temporary file, then renamed)."""
    registry = CollectorRegistry()
    IngestMetrics(registry).record(report, "cli")
    ended = Gauge(
        "rag_ingest_last_end_timestamp_seconds",
        "When the last `rag ingest` ended (Unix time)",
        registry=registry,
    )
    ended.set_to_current_time()
    write_to_textfile(str(path), registry)
