"""kill -9 during an ingest, at random moments and at the worst one: the previous index must
load and answer, and the next ingest must complete."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from subprocess import Popen

import pytest

from rag.embeddings import HashingEmbedder
from rag.ingestion import ingest
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.stores import folder as store
from tests.conftest import KillAt, dying_ingest, write_corpus


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


def run_child(settings: Settings, corpus: Path, kill: KillAt | None = None) -> Popen[str]:
    return dying_ingest(settings, corpus, kill, delay_s=0.002)


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


@pytest.mark.parametrize(
    "kill",
    [KillAt("os", "rename"), KillAt("os", "replace", suffix="CURRENT")],
    ids=["rename", "replace"],
)
def test_kill_at_the_last_moments_of_the_write(
    prepared: tuple[Settings, Path, str], kill: KillAt
) -> None:
    settings, corpus, version = prepared
    child = run_child(settings, corpus, kill)
    assert child.wait(timeout=120) == -signal.SIGKILL
    assert_old_index_answers(settings, version)
    ingest([corpus], settings, HashingEmbedder())  # the next ingest completes and cleans up
    assert not [p for p in settings.index_dir.iterdir() if p.name.startswith(store.TEMP_PREFIX)]


def test_kill_at_random_moments(prepared: tuple[Settings, Path, str]) -> None:
    settings, corpus, version = prepared
    # how long an undisturbed run takes, so the kills spread over all of it
    started = time.perf_counter()
    probe = run_child(settings.replace(index_dir=settings.index_dir.parent / "probe"), corpus)
    assert probe.wait(timeout=120) == 0
    duration = time.perf_counter() - started
    rng = random.Random(7)
    for _ in range(10):
        child = run_child(settings, corpus)
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
