"""A question -> the best chunks of the index, with their scores.

Dense search only for now: the query is embedded with the same model as the chunks and compared
by inner product (cosine on unit vectors). Lexical search and fusion come with the retrieval issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rag.chunks import Chunk
from rag.embeddings import Embedder
from rag.errors import IndexMismatch, UsageError
from rag.store import StoredIndex


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    chunk: Chunk

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "score": round(self.score, 6), **self.chunk.to_json()}


class DenseRetriever:
    def __init__(self, index: StoredIndex, embedder: Embedder) -> None:
        manifest = index.manifest
        if (manifest.embedding_model, manifest.dimension) != (embedder.name, embedder.dimension):
            raise IndexMismatch(
                f"the index was built with {manifest.embedding_model} ({manifest.dimension}d) but "
                f"{embedder.name} ({embedder.dimension}d) is selected: re-ingest, or select "
                "that model"
            )
        self._index = index
        self._embedder = embedder

    def search(self, query: str, k: int = 5) -> list[Hit]:
        if not query.strip():
            raise UsageError("the question is empty")
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        if self._index.vectors.size == 0:
            return []
        scores, rows = self._index.vectors.search(self._embedder.embed([query]), k)
        hits: list[Hit] = []
        for score, row in zip(scores[0], rows[0], strict=True):
            if row >= 0:
                hits.append(Hit(len(hits) + 1, float(score), self._index.chunks[int(row)]))
        return hits
