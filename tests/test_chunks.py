from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from rag.chunks import Chunker
from rag.documents import parse_document
from rag.embeddings import HashingEmbedder, make_embedder
from rag.settings import Settings
from tests.conftest import ROOT


def test_offsets_point_into_the_document_and_chunks_overlap() -> None:
    text = " ".join(f"Sentence number {i} says something about topic {i % 7}." for i in range(200))
    doc = parse_document(text.encode(), Path("long.txt"), "long.txt")
    chunks = Chunker(HashingEmbedder().count_tokens, 50, 10).split(doc)
    assert len(chunks) > 10
    for number, chunk in enumerate(chunks):
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.chunk_no == number and chunk.id == f"long.txt#{number}"
        assert HashingEmbedder().count_tokens(chunk.text) <= 50
    # consecutive chunks share text (the overlap), and together they cover the whole document
    assert all(b.start < a.end for a, b in itertools.pairwise(chunks))
    assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)


def test_repeated_text_gets_increasing_offsets() -> None:
    text = "\n\n".join(["The same paragraph again."] * 5)
    doc = parse_document(text.encode(), Path("r.txt"), "r.txt")
    chunks = Chunker(HashingEmbedder().count_tokens, 16, 0).split(doc)
    starts = [c.start for c in chunks]
    assert starts == sorted(set(starts))


def test_default_chunks_fit_minilm_on_the_sample_corpus() -> None:
    """Sized with MiniLM's own tokenizer (no model load): nothing MiniLM would silently cut."""
    settings = Settings()
    embedder = make_embedder(settings)
    chunker = Chunker(
        embedder.count_tokens, settings.chunk_size_tokens, settings.chunk_overlap_tokens
    )
    sizes = []
    for path in sorted((ROOT / "data").glob("*.md")):
        doc = parse_document(path.read_bytes(), path, path.name)
        sizes += [embedder.count_tokens(c.text) for c in chunker.split(doc)]
    assert embedder.max_tokens == 254
    assert max(sizes) <= settings.chunk_size_tokens <= embedder.max_tokens
    assert sum(sizes) / len(sizes) > settings.chunk_size_tokens / 2  # chunks are not tiny


@pytest.mark.parametrize(("size", "overlap"), [(8, 0), (100, 100), (100, -1)])
def test_bad_chunk_settings_are_refused(size: int, overlap: int) -> None:
    from rag.errors import UsageError

    with pytest.raises(UsageError):
        Settings(chunk_size_tokens=size, chunk_overlap_tokens=overlap)
