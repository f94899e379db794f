"""Shared fixtures: a model-free embedder, settings pointing into tmp_path, a tiny corpus."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bench.live import free_port
from rag.embeddings import HashingEmbedder
from rag.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

CORPUS = {
    "football.md": "# Super Bowl 50\n\nThe Denver Broncos defeated the Carolina Panthers 24-10 "
    "to win Super Bowl 50 at Levi's Stadium in Santa Clara.\n\nPeyton Manning was the Broncos "
    "quarterback and Von Miller was named Most Valuable Player.",
    "oxygen.txt": "Oxygen is a chemical element with symbol O and atomic number 8. It is a highly "
    "reactive nonmetal and oxidizing agent that readily forms oxides with most elements.",
    "nested/primes.html": "<html><head><title>Prime numbers</title><style>p{color:red}</style>"
    "</head><body><h1>Primes</h1><script>var secret = 'do not index';</script><p>A prime number "
    "is a natural number greater than 1 that has no positive divisors other than 1 and itself."
    "</p></body></html>",
}


def write_corpus(folder: Path, files: Mapping[str, str | bytes] | None = None) -> Path:
    for name, content in (CORPUS if files is None else files).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        index_dir=tmp_path / "index",
        embedding_model="hashing",
        chunk_size_tokens=40,
        chunk_overlap_tokens=8,
    )


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL 16 with pgvector for the whole session (pgserver: no root, no system
    package); each test gets a schema of its own. Its data lives in a folder of its own, not
    under pytest's numbered temporary folders: another pytest run of the same user keeps only
    its 3 latest and would delete this one's under a running server."""
    folder = Path(tempfile.mkdtemp(prefix="rag-pg-"))  # short: a socket path has 107 bytes
    try:
        server = start_postgres(folder)
        yield server.get_uri()
        server.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def start_postgres(folder: Path) -> Any:
    """pgserver's PostgreSQL in `folder`. pgserver gives `pg_ctl start` 10 s, which a busy
    machine can exceed while PostgreSQL itself goes on starting: asked again, it finds the
    server it started."""
    from pgserver.postgres_server import get_server

    for attempt in range(3):
        try:
            return get_server(folder, cleanup_mode="stop")
        except subprocess.TimeoutExpired:
            if attempt == 2:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def postgres_settings(settings: Settings, url: str) -> Settings:
    return settings.replace(
        store="pgvector", database_url=url, database_schema=f"test_{uuid.uuid4().hex[:12]}"
    )


@pytest.fixture(params=["faiss", "pgvector"])
def stored(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """`settings` for each store: the same test runs on FAISS files and on PostgreSQL."""
    if request.param == "faiss":
        return settings
    chosen: Settings = request.getfixturevalue("pg")
    return chosen


@pytest.fixture
def pg(settings: Settings, postgres_url: str) -> Iterator[Settings]:
    """`settings` on the pgvector store, in a schema of this test's own, dropped afterwards."""
    from rag.stores.pgvector import PostgresStore

    chosen = postgres_settings(settings, postgres_url)
    yield chosen
    PostgresStore(chosen).drop_schema()


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """llama.cpp's own OpenAI-compatible server with the Gemma GGUF, on a free port."""
    from rag.llm.gguf import default_model_path

    gemma_path = default_model_path()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gemma_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--model_alias",
            "gemma",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, "llama_cpp.server exited"
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


class OwnPostgres:
    """A PostgreSQL of one test's own, which the test may stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = start_postgres(folder)
        self.url = str(self.server.get_uri())

    def stop(self) -> None:
        self.server.cleanup()

    def start(self) -> None:
        self.server = start_postgres(self.folder)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[OwnPostgres]:
    database = OwnPostgres(tmp_path / "pgdata")
    yield database
    database.stop()
