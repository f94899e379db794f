"""kill -9 during an ingest, at random moments and at the worst one: the previous index must
load and answer, and the next ingest must complete."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rag.embeddings import HashingEmbedder
from rag.ingestion import ingest
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.stores import folder as store
from tests.conftest import write_corpus

ROOT = Path(__file__).resolve().parents[1]

# An ingest in a child process: a slow fake embedder makes the run last long enough to be hit,
# and KILL_AT names a step of the write where the child kills itself.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from rag.stores import folder as store
    from rag.embeddings import HashingEmbedder
    from rag.ingestion import ingest
    from rag.settings import Settings

    class Slow(HashingEmbedder):
        def embed(self, texts):
            time.sleep(0.002 * len(texts))
            return super().embed(texts)

    kill_at = os.environ.get("KILL_AT")
    if kill_at:
        original = getattr(os, kill_at)
        def dying(*args, **kwargs):
            if kill_at != "replace" or str(args[1]).endswith("CURRENT"):
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        setattr(os, kill_at, dying)

    settings = Settings(index_dir=Path(sys.argv[1]), embedding_model="hashing",
                        chunk_size_tokens=40, chunk_overlap_tokens=8)
    print("started", flush=True)
    ingest([Path(sys.argv[2])], settings, Slow())
    print("finished", flush=True)
    """
)


def big_corpus(folder: Path, marker: str) -> Path:
    files = {
        f"doc{i}.txt": " ".join(
            f"{marker} paragraph {i} sentence {j} about topic {j % 13}." for j in range(60)
        )
        for i in range(30)
    }
    return write_corpus(folder, files)


def assert_old_index_answers(settings: Settings, expected_version: str) -> None:
    loaded = store.load(settings.index_dir)
    assert loaded.version == expected_version
    hits = Retriever(loaded, HashingEmbedder()).search("original paragraph topic", 3)
    assert hits and all("original" in h.chunk.text for h in hits)


def run_child(index: Path, corpus: Path, kill_at: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if kill_at:
        env["KILL_AT"] = kill_at
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(index), str(corpus)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def prepared(tmp_path: Path) -> tuple[Settings, Path, str]:
    settings = Settings(
        index_dir=tmp_path / "index",
        embedding_model="hashing",
        chunk_size_tokens=40,
        chunk_overlap_tokens=8,
    )
    first = ingest([big_corpus(tmp_path / "docs", "original")], settings, HashingEmbedder())
    changed = big_corpus(tmp_path / "docs", "changed")  # same folder, every file rewritten
    return settings, changed, str(first.version)


@pytest.mark.parametrize("kill_at", ["rename", "replace"])
def test_kill_at_the_last_moments_of_the_write(
    prepared: tuple[Settings, Path, str], kill_at: str
) -> None:
    settings, corpus, version = prepared
    child = run_child(settings.index_dir, corpus, kill_at)
    assert child.wait(timeout=120) == -signal.SIGKILL
    assert_old_index_answers(settings, version)
    ingest([corpus], settings, HashingEmbedder())  # the next ingest completes and cleans up
    assert not [p for p in settings.index_dir.iterdir() if p.name.startswith(store.TEMP_PREFIX)]


def test_kill_at_random_moments(prepared: tuple[Settings, Path, str]) -> None:
    settings, corpus, version = prepared
    # how long an undisturbed run takes, so the kills spread over all of it
    started = time.perf_counter()
    probe = run_child(settings.index_dir.parent / "probe-index", corpus)
    assert probe.wait(timeout=120) == 0
    duration = time.perf_counter() - started
    rng = random.Random(7)
    for _ in range(10):
        child = run_child(settings.index_dir, corpus)
        assert child.stdout is not None and child.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0, duration * 0.9))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        loaded = store.load(settings.index_dir)  # always loadable: the old or a complete new one
        if loaded.version != version:
            assert all("changed" in c.text for c in loaded.chunks)
            version = loaded.version
            ingest([big_corpus(corpus, "original")], settings, HashingEmbedder())
            version = store.load(settings.index_dir).version
            big_corpus(corpus, "changed")
        assert_old_index_answers(settings, version)
    report = ingest([corpus], settings, HashingEmbedder())
    assert report.wrote and not report.skipped
