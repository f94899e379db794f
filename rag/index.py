"""Vectors -> a FAISS index: inner product on unit vectors (= cosine), exact or approximate.

`flat` is exact and the default; `hnsw` is approximate and meant for corpora of millions of
chunks. The index knows rows only; which chunk a row is lives in the store beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rag.settings import IndexType

HNSW_NEIGHBOURS = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
# A filtered HNSW search that admits under this share of the rows is done exactly over them: a
# graph walk through mostly excluded nodes gives up before it finds k admitted ones.
EXACT_BELOW = 0.05


class FaissIndex:
    def __init__(self, index: Any, kind: IndexType) -> None:
        self._index = index
        self.kind = kind

    @classmethod
    def build(cls, vectors: NDArray[np.float32], dimension: int, kind: IndexType) -> FaissIndex:
        import faiss

        index: Any
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            index = faiss.IndexFlatIP(dimension)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index, kind)

    @classmethod
    def load(cls, path: Path, kind: IndexType) -> FaissIndex:
        import faiss

        index: Any = faiss.read_index(str(path))
        if kind == "hnsw":
            index.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(index, kind)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    def search(
        self, queries: NDArray[np.float32], k: int, allowed: NDArray[np.bool_] | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The `k` nearest rows to each query (row -1: none), among the `allowed` rows only
        when given (a mask over all rows)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is None:
            return self._index.search(queries, max(1, min(k, self.size)))  # type: ignore[no-any-return]
        import faiss as typed_faiss

        faiss: Any = typed_faiss  # its bundled stubs lack the selector and HNSW parameters
        rows = np.flatnonzero(allowed)
        k = min(k, len(rows))
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.kind == "hnsw" and len(rows) < EXACT_BELOW * self.size:
            scores = queries @ self.reconstruct(rows).T
            best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(scores, best, axis=1), rows[best]
        bits = np.packbits(allowed, bitorder="little")  # alive while FAISS reads it
        selector = faiss.IDSelectorBitmap(bits)
        params = (
            faiss.SearchParametersHNSW(sel=selector, efSearch=max(HNSW_EF_SEARCH, k))
            if self.kind == "hnsw"
            else faiss.SearchParameters(sel=selector)
        )
        scores, found = self._index.search(queries, k, params=params)
        return scores, found

    def vectors(self) -> NDArray[np.float32]:
        if self.size == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(self._index.reconstruct_n(0, self.size), dtype=np.float32)

    def reconstruct(self, rows: Sequence[int] | NDArray[np.int64]) -> NDArray[np.float32]:
        """The stored vectors of some rows, in the order given."""
        keys = np.asarray(rows, dtype=np.int64)
        if len(keys) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(self._index.reconstruct_batch(keys), dtype=np.float32)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))
