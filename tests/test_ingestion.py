from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from rag.corpus import Corpus, IngestReport
from rag.embeddings import Embedder, HashingEmbedder
from rag.errors import IndexLocked, UsageError
from rag.ingestion import ingest
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.stores import folder as store
from rag.stores import make_store
from tests.conftest import top_source, write_corpus


class CountingEmbedder(HashingEmbedder):
    """The hashing fake, remembering what it was asked to embed."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        self.name = name or self.name
        self.texts: list[str] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.texts += list(texts)
        return super().embed(texts)


def into(settings: Settings, paths: list[Path], embedder: Embedder, **options: Any) -> IngestReport:
    """Ingest through the store `settings` selects (FAISS files or PostgreSQL)."""
    return ingest(
        paths,
        settings,
        embedder,
        progress=False,
        **options,
    )


def opened(settings: Settings) -> Corpus:
    return make_store(settings).open()


def test_round_trip_finds_the_right_chunk(corpus: Path, stored: Settings) -> None:
    report = into(stored, [corpus], HashingEmbedder())
    assert report.wrote and not report.skipped
    assert sorted(report.added) == [
        "docs/football.md",
        "docs/nested/primes.html",
        "docs/oxygen.txt",
    ]
    assert top_source(stored, "Who won Super Bowl 50, the Broncos?") == "docs/football.md"
    assert top_source(stored, "what is a prime number divisors") == "docs/nested/primes.html"
    assert opened(stored).manifest.n_chunks == report.n_chunks


def test_the_folder_index_keeps_chunks_and_offsets(corpus: Path, settings: Settings) -> None:
    report = ingest([corpus], settings, HashingEmbedder())
    loaded = store.load(settings.index_dir)
    assert loaded.vectors.size == len(loaded.chunks) == report.n_chunks
    assert not any("secret" in c.text for c in loaded.chunks)  # the HTML script was dropped
    for chunk in loaded.chunks:
        entry = loaded.manifest.files[chunk.source]
        text = Path(entry.path).read_text()
        if chunk.source.endswith(".md") or chunk.source.endswith(".txt"):
            assert text[chunk.start : chunk.end] == chunk.text


def test_incremental_add_change_delete(corpus: Path, stored: Settings) -> None:
    settings = stored
    embedder = CountingEmbedder()
    first = into(settings, [corpus], embedder)
    first_count = len(embedder.texts)

    again = into(settings, [corpus], embedder)
    assert not again.wrote and again.version == first.version
    assert len(embedder.texts) == first_count  # nothing embedded
    assert sorted(again.unchanged) == sorted(first.added)

    (corpus / "oxygen.txt").write_text("Oxygen was discovered by Priestley and Scheele.")
    (corpus / "new.md").write_text("# Geology\n\nGeology studies rocks and the Earth.")
    (corpus / "nested" / "primes.html").unlink()
    embedder.texts.clear()
    report = into(settings, [corpus], embedder)
    assert report.added == ["docs/new.md"]
    assert report.changed == ["docs/oxygen.txt"]
    assert report.removed == ["docs/nested/primes.html"]
    assert report.unchanged == ["docs/football.md"]
    assert all("Broncos" not in t for t in embedder.texts)  # the unchanged file was not re-embedded
    manifest = opened(settings).manifest
    assert sorted(manifest.files) == ["docs/football.md", "docs/new.md", "docs/oxygen.txt"]
    assert manifest.n_chunks == report.n_chunks
    assert top_source(settings, "who discovered oxygen Priestley") == "docs/oxygen.txt"
    assert top_source(settings, "Broncos Super Bowl") == "docs/football.md"


def test_no_prune_keeps_removed_files(corpus: Path, stored: Settings) -> None:
    into(stored, [corpus], HashingEmbedder())
    (corpus / "oxygen.txt").unlink()
    report = into(stored, [corpus], HashingEmbedder(), prune=False)
    assert report.removed == [] and not report.wrote
    assert "docs/oxygen.txt" in opened(stored).manifest.files


def test_other_folders_are_kept_when_one_is_reingested(tmp_path: Path, stored: Settings) -> None:
    a = write_corpus(tmp_path / "a", {"one.md": "apples and pears"})
    b = write_corpus(tmp_path / "b", {"two.md": "rockets and the moon"})
    into(stored, [a], HashingEmbedder())
    into(stored, [b], HashingEmbedder())
    files = opened(stored).manifest.files
    assert sorted(files) == ["a/one.md", "b/two.md"]


def test_model_change_rebuilds_everything(corpus: Path, stored: Settings) -> None:
    into(stored, [corpus], HashingEmbedder())
    other = CountingEmbedder(name="another-model")
    report = into(stored, [corpus / "oxygen.txt"], other)
    assert report.rebuild_reason and "embedding model changed" in report.rebuild_reason
    loaded = opened(stored)
    assert loaded.manifest.embedding_model == "another-model"
    # every file of the old index was re-read and re-embedded, including ones not named this time
    assert len(loaded.manifest.files) == 3
    assert report.n_embedded == loaded.manifest.n_chunks
    assert len(other.texts) >= loaded.manifest.n_chunks  # each chunk's sentences, one by one


def test_chunk_settings_change_rebuilds(corpus: Path, stored: Settings) -> None:
    first = into(stored, [corpus], HashingEmbedder())
    smaller = stored.replace(chunk_size_tokens=20, chunk_overlap_tokens=4)  # given: it counts
    report = into(smaller, [corpus], HashingEmbedder())
    assert report.rebuild_reason and "chunk settings changed" in report.rebuild_reason
    assert report.n_chunks > first.n_chunks


def test_index_type_change_reuses_vectors(corpus: Path, settings: Settings) -> None:
    embedder = CountingEmbedder()
    ingest([corpus], settings, embedder)
    embedded = len(embedder.texts)
    report = ingest([corpus], settings.replace(index_type="hnsw"), embedder)
    assert report.wrote and report.n_embedded == 0 and len(embedder.texts) == embedded
    loaded = store.load(settings.index_dir)
    assert loaded.manifest.index_type == "hnsw"
    assert (
        Retriever(loaded, HashingEmbedder()).search("Broncos", 1)[0].chunk.source
        == "docs/football.md"
    )


def test_bad_files_are_skipped_and_the_rest_ingested(tmp_path: Path, stored: Settings) -> None:
    docs = write_corpus(
        tmp_path / "docs",
        {
            "good.md": "good text about rivers",
            "empty.txt": "",
            "junk.txt": b"\x00\xff\x00",
            "locked.docx": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512),
            "broken.pdf": b"%PDF-1.4 nope",
        },
    )
    report = into(stored, [docs, tmp_path / "nope.md", docs / "good.md"], HashingEmbedder())
    assert report.added == ["docs/good.md"]  # named twice, ingested once
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == {"empty.txt", "junk.txt", "locked.docx", "broken.pdf", "nope.md"}
    assert reasons["nope.md"] == "no such file or directory"


def test_a_file_that_turns_bad_keeps_its_previous_version(corpus: Path, stored: Settings) -> None:
    into(stored, [corpus], HashingEmbedder())
    (corpus / "oxygen.txt").write_bytes(b"\x00\x00garbage")
    report = into(stored, [corpus], HashingEmbedder())
    assert [Path(s.path).name for s in report.skipped] == ["oxygen.txt"]
    assert "previously ingested version is kept" in report.skipped[0].reason
    assert top_source(stored, "oxygen chemical element") == "docs/oxygen.txt"


def test_a_corrupt_previous_index_is_rebuilt(corpus: Path, settings: Settings) -> None:
    first = ingest([corpus], settings, HashingEmbedder())
    (settings.index_dir / str(first.version) / store.VECTORS).write_bytes(b"garbage")
    report = ingest([corpus], settings, HashingEmbedder())
    assert report.rebuild_reason and "unusable" in report.rebuild_reason
    assert store.load(settings.index_dir).manifest.n_chunks == first.n_chunks


def test_chunks_longer_than_the_model_reads_are_refused(corpus: Path, settings: Settings) -> None:
    with pytest.raises(UsageError, match="exceeds"):
        ingest([corpus], dataclasses.replace(settings, chunk_size_tokens=300), HashingEmbedder())


def test_a_second_writer_is_refused(corpus: Path, settings: Settings) -> None:
    with store.lock(settings.index_dir), pytest.raises(IndexLocked):
        ingest([corpus], settings, HashingEmbedder())


def test_old_versions_are_cleaned_up(corpus: Path, settings: Settings) -> None:
    for i in range(4):
        (corpus / "counter.txt").write_text(f"version {i}")
        ingest([corpus], settings, HashingEmbedder())
    versions = [p for p in settings.index_dir.iterdir() if p.name.startswith("v")]
    assert len(versions) == 2  # the live one and the one before it, for readers mid-load
    assert json.loads(
        (settings.index_dir / store.load(settings.index_dir).version / "manifest.json").read_text()
    )


def test_an_index_keeps_its_own_settings_unless_others_are_given(
    corpus: Path, stored: Settings
) -> None:
    """Built with 64/8 tokens and HNSW; later ingests with the defaults (a plain `rag ingest`,
    a server's upload) keep them; settings given explicitly change them, with a note."""
    built = stored.replace(chunk_size_tokens=64, chunk_overlap_tokens=8, index_type="hnsw")
    into(built, [corpus], HashingEmbedder())
    plain = dataclasses.replace(  # the defaults, none given: as `rag serve` starts
        stored, chunk_size_tokens=200, chunk_overlap_tokens=32, index_type="flat", given=frozenset()
    )
    (corpus / "new.md").write_text("# New\n\nTapirs eat ferns.", encoding="utf-8")
    report = into(plain, [corpus], HashingEmbedder())
    assert report.rebuild_reason is None and report.notes == []
    assert report.added == ["docs/new.md"] and report.n_embedded == 1
    manifest = opened(stored).manifest
    assert (manifest.chunk_size_tokens, manifest.chunk_overlap_tokens) == (64, 8)
    if stored.store == "faiss":
        assert manifest.index_type == "hnsw"
        flat = into(plain.replace(index_type="flat"), [corpus], HashingEmbedder())
        assert flat.notes == [
            "index type changed from hnsw to flat: the vector index is rebuilt from the stored "
            "vectors (nothing is re-embedded)"
        ]
        assert opened(stored).manifest.index_type == "flat"
    given = dataclasses.replace(
        plain, chunk_size_tokens=100, given=frozenset({"chunk_size_tokens"})
    )
    changed = into(given, [corpus], HashingEmbedder())
    assert changed.rebuild_reason and "from 64/8 to 100/8" in changed.rebuild_reason


def test_given_index_settings_come_from_the_environment_and_reach_the_workers() -> None:
    from_env = Settings.from_env({"RAG_CHUNK_SIZE_TOKENS": "100", "RAG_TOP_K": "3"})
    assert from_env.given == {"chunk_size_tokens"}
    assert "RAG_CHUNK_OVERLAP_TOKENS" not in Settings().to_env()  # the index's own, in workers
    worker = Settings.from_env(from_env.to_env())
    assert worker == from_env and worker.given == {"chunk_size_tokens"}
    assert Settings().replace(index_type="hnsw", top_k=2).given == {"index_type"}
