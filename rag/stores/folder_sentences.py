"""The folder store's sentence vectors: every chunk's sentences in one FAISS index, in chunk
order, and where each chunk's rows start (`sentence_starts.npy`, read without pickle). Dense
retrieval asks it for the chunks holding the nearest sentences, and for each candidate chunk
the cosine of its best sentence."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rag.index import FaissIndex
from rag.settings import IndexType

VECTORS = "sentences.faiss"
STARTS = "sentence_starts.npy"


class SentenceRows:
    def __init__(self, vectors: FaissIndex, starts: NDArray[np.int64]) -> None:
        self.vectors = vectors
        self.starts = starts  # chunk i's sentences are rows starts[i] to starts[i + 1]

    @classmethod
    def build(
        cls, per_chunk: Sequence[NDArray[np.float32]], dimension: int, kind: IndexType
    ) -> SentenceRows:
        counts = [len(rows) for rows in per_chunk]
        starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        stacked = np.concatenate(list(per_chunk)) if per_chunk else np.zeros((0, dimension))
        return cls(FaissIndex.build(stacked.astype(np.float32), dimension, kind), starts)

    @classmethod
    def load(cls, folder: Path, kind: IndexType) -> SentenceRows | None:
        """The sentence rows of a version (None: a version written before they existed)."""
        if not (folder / VECTORS).is_file():
            return None
        starts = np.load(folder / STARTS, allow_pickle=False).astype(np.int64)
        return cls(FaissIndex.load(folder / VECTORS, kind), starts)

    def save(self, folder: Path) -> None:
        self.vectors.save(folder / VECTORS)
        with (folder / STARTS).open("wb") as out:
            np.save(out, self.starts, allow_pickle=False)

    @property
    def n_chunks(self) -> int:
        return len(self.starts) - 1

    def of_chunk(self, row: int) -> NDArray[np.float32]:
        """One chunk's sentence vectors (to carry an unchanged document into a new version)."""
        return self.vectors.reconstruct(range(self.starts[row], self.starts[row + 1]))

    def near(
        self, vector: NDArray[np.float32], k: int, chunks: NDArray[np.bool_] | None = None
    ) -> set[int]:
        """The chunks holding the `k` sentences nearest to `vector` (among the sentences of
        the `chunks` allowed, a mask over chunk rows, when given)."""
        if self.vectors.size == 0:
            return set()
        allowed = None if chunks is None else np.repeat(chunks, np.diff(self.starts))
        _, rows = self.vectors.search(vector[None, :], k, allowed)
        found = rows[0][rows[0] >= 0]
        return {int(c) for c in np.searchsorted(self.starts, found, side="right") - 1}

    def best(self, chunks: Sequence[int], vector: NDArray[np.float32]) -> dict[int, float]:
        """For each chunk row, the cosine of its sentence nearest to `vector`."""
        ranges = [np.arange(self.starts[c], self.starts[c + 1]) for c in chunks]
        if not ranges:
            return {}
        cosines = self.vectors.reconstruct(np.concatenate(ranges)) @ vector
        bounds = np.cumsum([0, *(len(r) for r in ranges)])
        return {
            chunk: float(cosines[a:b].max())
            for chunk, a, b in zip(chunks, bounds[:-1], bounds[1:], strict=True)
            if b > a
        }
