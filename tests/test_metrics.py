"""The metrics by themselves: what an ingest, an answer and the pool record, read back through
Prometheus' own parser; fixed label values; nothing recorded when they are off."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag.embeddings import HashingEmbedder
from rag.errors import UsageError
from rag.formats.archive import OLE_MAGIC
from rag.ingestion import ingest
from rag.ingestion_metrics import skip_kind
from rag.metrics import Metrics, prepare_multiprocess_dir, version_time_s
from rag.settings import Settings
from rag.stores.folder import current_version
from tests.metrics import samples


def test_every_skip_reason_ingestion_gives_has_its_own_kind(
    tmp_path: Path, settings: Settings
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Good\n\nDenver won Super Bowl 50.\n")
    (docs / "empty.md").write_text("")
    (docs / "utf16.txt").write_bytes(b"\xff\xfe\x00\xd8")  # a lone surrogate after the mark
    (docs / "locked.docx").write_bytes(OLE_MAGIC + bytes(512))
    (docs / "broken.xlsx").write_bytes(b"PK\x03\x04 not really")
    (docs / "binary.txt").write_bytes(b"abc\x00def")
    (docs / "blank.md").write_text("   \n\n")
    (docs / "tags.html").write_text("<html><body><script>x()</script></body></html>")
    (docs / "scan.pdf").write_bytes(b"%PDF-1.4 not really")
    (docs / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    report = ingest([docs, tmp_path / "missing.md"], settings, HashingEmbedder())
    kinds = {Path(s.path).name: skip_kind(s.reason) for s in report.skipped + report.ignored}
    assert kinds == {
        "empty.md": "empty",
        "utf16.txt": "encoding",
        "locked.docx": "encrypted",
        "broken.xlsx": "unreadable",
        "binary.txt": "binary",
        "blank.md": "empty",
        "tags.html": "no_text",
        "scan.pdf": "unreadable",
        "photo.jpg": "unsupported_type",
        "missing.md": "missing",
    }
    assert skip_kind("a reason nobody wrote yet") == "other"
    assert skip_kind("its parts inflate to 1,024 MiB, past the 512 MiB limit") == "bomb"
    assert skip_kind("OCR failed: Error opening data file") == "ocr"


def test_an_ingest_is_counted_by_result_and_skip_kind(tmp_path: Path, settings: Settings) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nDenver won Super Bowl 50.\n")
    (docs / "b.md").write_text("# B\n\nCarolina lost.\n")
    (docs / "c.txt").write_bytes(b"\xff\xfe broken")
    metrics = Metrics()
    report = ingest([docs], settings, HashingEmbedder())
    metrics.ingested(report, "upload")
    (docs / "b.md").write_text("# B\n\nCarolina lost to Denver.\n")
    metrics.ingested(ingest([docs], settings, HashingEmbedder()), "upload")
    got = samples(metrics.exposition())
    files = "rag_ingest_files_total"
    assert got[files, (("result", "added"), ("source", "upload"))] == 2
    assert got[files, (("result", "changed"), ("source", "upload"))] == 1
    assert got[files, (("result", "unchanged"), ("source", "upload"))] == 1
    assert got[files, (("result", "skipped"), ("source", "upload"))] == 2
    skipped = "rag_ingest_skipped_files_total"
    assert got[skipped, (("reason", "encoding"), ("source", "upload"))] == 2
    assert got["rag_ingests_total", (("source", "upload"),)] == 2
    assert got["rag_ingest_chunks_embedded_total", (("source", "upload"),)] == report.n_chunks + 1
    assert got["rag_ingest_duration_seconds_count", (("source", "upload"),)] == 2


def test_answers_pool_and_index_are_recorded() -> None:
    metrics = Metrics()
    metrics.answer("done", 0.2, 1.5, prompt_tokens=100, answer_tokens=30)
    metrics.answer("done", 0.4, 2.5, prompt_tokens=50, answer_tokens=10)
    metrics.answer("disconnected")
    metrics.answer("something else")  # not a known outcome: counted as failed
    metrics.occupancy(running=1, waiting=3)
    metrics.refused()
    metrics.timed_out()
    metrics.index(chunks=120, documents=7, version="v1764290000500000000")
    got = samples(metrics.exposition())
    assert got["rag_answers_total", (("outcome", "done"),)] == 2
    assert got["rag_answers_total", (("outcome", "disconnected"),)] == 1
    assert got["rag_answers_total", (("outcome", "failed"),)] == 1
    assert got["rag_time_to_first_token_seconds_count", ()] == 2
    assert got["rag_time_to_first_token_seconds_sum", ()] == pytest.approx(0.6)
    assert got["rag_time_to_first_token_seconds_bucket", (("le", "0.25"),)] == 1
    assert got["rag_answer_duration_seconds_sum", ()] == pytest.approx(4.0)
    assert got["rag_prompt_tokens_total", ()] == 150
    assert got["rag_answer_tokens_total", ()] == 40
    assert got["rag_generations_running", ()] == 1
    assert got["rag_generations_waiting", ()] == 3
    assert got["rag_refusals_total", ()] == 1
    assert got["rag_generation_timeouts_total", ()] == 1
    assert got["rag_index_chunks", ()] == 120
    assert got["rag_index_documents", ()] == 7
    assert got["rag_index_version_timestamp_seconds", ()] == pytest.approx(1764290000.5)
    assert got["rag_process_resident_memory_bytes", ()] > 10 * 2**20


def test_methods_outside_the_known_set_share_one_label() -> None:
    metrics = Metrics()
    for method in ("GET", "BREW", "PROPFIND", "x" * 100):
        metrics.request("/v1/ask", method, 405, 0.001)
    metrics.request("/healthz", "GET", None, 0.001)  # the client left before any status
    got = samples(metrics.exposition())
    series = {labels for name, labels in got if name == "rag_http_requests_total"}
    assert series == {
        (("method", "GET"), ("route", "/v1/ask"), ("status", "405")),
        (("method", "other"), ("route", "/v1/ask"), ("status", "405")),
        (("method", "GET"), ("route", "/healthz"), ("status", "none")),
    }


def test_off_records_nothing() -> None:
    metrics = Metrics(enabled=False)
    metrics.request("/v1/ask", "POST", 200, 0.1)
    metrics.answer("done", 0.1, 0.2, 10, 10)
    metrics.refused()
    got = samples(metrics.exposition())
    assert got.get(("rag_answers_total", (("outcome", "done"),)), 0) == 0
    assert got["rag_refusals_total", ()] == 0
    assert not [key for key in got if key[0] == "rag_http_requests_total"]


def test_the_real_index_version_reads_as_its_time(tmp_path: Path, settings: Settings) -> None:
    (tmp_path / "a.md").write_text("# A\n\nText.\n")
    ingest([tmp_path / "a.md"], settings, HashingEmbedder())
    version = current_version(settings.index_dir)
    assert abs(version_time_s(version) - time.time()) < 600
    assert version_time_s(None) == version_time_s("pg-") == 0.0


def test_a_multiprocess_folder_is_emptied_of_an_earlier_run(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_12345.db").write_bytes(b"old counts")
    (folder / "keep.txt").write_text("not ours")
    prepare_multiprocess_dir(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("raw", ["1", "true", "Yes", "on"])
def test_switches_read_yes(raw: str) -> None:
    assert Settings.from_env({"RAG_METRICS_PUBLIC": raw}).metrics_public is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off"])
def test_switches_read_no(raw: str) -> None:
    assert Settings.from_env({"RAG_METRICS": raw}).metrics is False


def test_a_switch_that_is_neither_is_refused() -> None:
    with pytest.raises(UsageError, match="RAG_METRICS must be 1 or 0"):
        Settings.from_env({"RAG_METRICS": "maybe"})
