"""Views of an index for people exploring it (the notebook): chunk vectors projected to 2-D,
and one query's ranking with dense, BM25 and fused scores side by side."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rag.retrieval import Hit, Retriever
from rag.stores.folder_version import StoredIndex


def project_2d(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """The vectors' coordinates on their two principal components (PCA by SVD).

    >>> project_2d(np.array([[1, 0, 0], [-1, 0, 0], [0, 0.1, 0]], dtype=np.float32)).shape
    (3, 2)
    """
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    return np.asarray(centred @ axes[:2].T, dtype=np.float32)


def chunk_map(index: StoredIndex) -> tuple[NDArray[np.float32], list[str]]:
    """Every chunk's 2-D position and the title of its document, in row order."""
    return project_2d(index.vectors.vectors()), [chunk.title for chunk in index.chunks]


@dataclass(frozen=True)
class Row:
    rank: int
    title: str
    fused: float | None
    dense: float | None
    bm25: float | None
    text: str


def score_table(retriever: Retriever, question: str, k: int = 5) -> list[Row]:
    """The hybrid ranking of `question`, each row with its dense and BM25 scores."""
    hits: list[Hit] = retriever.search(question, k, mode="hybrid")
    return [
        Row(h.rank, h.chunk.title, h.score, h.dense_score, h.bm25_score, h.chunk.text[:80])
        for h in hits
    ]


def format_table(rows: list[Row]) -> str:
    """A fixed-width text table of `rows` (None shown as '-')."""

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [f"{'#':>2}  {'fused':>6} {'dense':>6} {'bm25':>7}  {'title':<22} text"]
    lines += [
        f"{r.rank:>2}  {cell(r.fused):>6} {cell(r.dense):>6} {cell(r.bm25):>7}  "
        f"{r.title[:22]:<22} {r.text}"
        for r in rows
    ]
    return "\n".join(lines)
