"""Hits and prompts built by hand, for tests of the layers above retrieval."""

from __future__ import annotations

from rag.chunks import Chunk
from rag.retrieval import Hit


def hit(text: str, rank: int = 1, title: str = "Doc", source: str = "docs/doc.md") -> Hit:
    chunk = Chunk(f"{source}#{rank}", source, title, rank - 1, 0, len(text), text, "")
    return Hit(rank, 1.0 / rank, chunk, 0.9, None)
