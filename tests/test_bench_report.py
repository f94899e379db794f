"""The helpers every benchmark section reports with, and the `rag serve` process the benchmarks
and the tests share."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from bench.live import ServerProcess, free_port
from bench.report import percentile, spread, summary, table
from rag.embeddings import HashingEmbedder
from rag.ingestion import ingest
from rag.settings import Settings


def test_percentile_is_the_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert [percentile(values, q) for q in (0, 0.25, 0.5, 0.99, 1)] == [1, 2, 3, 5, 5]
    assert percentile(list(range(101)), 0.95) == 95
    assert percentile([], 0.5) == 0.0


def test_summary_and_spread() -> None:
    values = [float(v) for v in range(1, 101)]
    assert summary(values) == {"p50": 51.0, "p99": 99.0, "max": 100.0, "n": 100}
    assert summary([]) == {"p50": 0.0, "p99": 0.0, "max": 0.0, "n": 0}
    assert spread([1.0, 3.0, 2.0], "{:.1f}") == "2.0 (1.0-3.0)"
    assert spread([1.25]) == "1.25"


def test_table_aligns_and_keeps_empty_cells_one_space_wide() -> None:
    assert table(["name", "n"], "lr", [["a", 1], ["", 2.5]]) == [
        "| name | n |",
        "|---|---:|",
        "| a | 1 |",
        "| | 2.5 |",
    ]
    with pytest.raises(ValueError, match="3 cells"):
        table(["a", "b"], "ll", [[1, 2, 3]])
    with pytest.raises(ValueError, match="align"):
        table(["a", "b"], "lx", [])


def test_free_port_is_free() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_server_that_exits_at_start_says_why() -> None:
    server = ServerProcess({}, "--no-such-option", timeout_s=60)
    with pytest.raises(RuntimeError, match=r"the server exited: (?s:.*)--no-such-option"):
        server.__enter__()


@pytest.mark.slow
def test_a_server_process_is_ready_once_entered_and_gone_after(
    corpus: Path, settings: Settings
) -> None:
    ingest([corpus], settings, HashingEmbedder())
    index = str(settings.index_dir)
    env = {"RAG_LLM": "mock", "RAG_EMBEDDING_MODEL": "hashing", "RAG_INDEX_DIR": index}
    with ServerProcess(env) as server:
        assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
        pid = server.pid
    assert server.process.poll() is not None and server.process.pid == pid
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/healthz", timeout=2)
