"""Chunks -> a BM25 index (bm25s: sparse matrices, English stop words, Snowball stemming).

Each chunk is indexed with its document title in front, so a question naming the subject finds
passages that only imply it. k1 is 0.1 instead of the usual 1.2-1.5: a question names each
thing once, so whether a chunk holds a rare word matters more than how often it repeats it
(chosen on squad-dev-a articles 1-12, see `rag/retrieval.py`). Saved beside the vectors with
bm25s' own numpy/JSON files (`allow_pickle=False` on both sides).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rag.chunks import Chunk


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


K1 = 0.1  # term frequency saturates at once (see above); b stays 0.75
B = 0.75


def lexical_text(chunk: Chunk) -> str:
    return f"{chunk.title}\n{chunk.text}"


class LexicalIndex:
    def __init__(self, retriever: Any, size: int) -> None:
        self._retriever = retriever
        self._stemmer = _stemmer()
        self.size = size

    @classmethod
    def build(cls, chunks: Sequence[Chunk]) -> LexicalIndex:
        import bm25s

        retriever = bm25s.BM25(k1=K1, b=B)
        if chunks:
            tokens = bm25s.tokenize(
                [lexical_text(c) for c in chunks],
                stopwords="en",
                stemmer=_stemmer(),
                show_progress=False,
            )
            retriever.index(tokens, show_progress=False)
        return cls(retriever, len(chunks))

    @classmethod
    def load(cls, folder: Path, size: int) -> LexicalIndex:
        import bm25s

        if size == 0:
            return cls(bm25s.BM25(), 0)
        return cls(bm25s.BM25.load(str(folder), allow_pickle=False, load_corpus=False), size)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self.size:
            self._retriever.save(str(folder), allow_pickle=False)

    def search(
        self, query: str, k: int, allowed: NDArray[np.bool_] | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """BM25 scores and row numbers of the best `k` chunks (fewer when few share a term),
        among the `allowed` rows only when given (a mask over all rows)."""
        import bm25s

        empty = (np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64))
        if self.size == 0:
            return empty
        tokens = bm25s.tokenize(
            [query], stopwords="en", stemmer=self._stemmer, show_progress=False, return_ids=False
        )
        if not tokens or not tokens[0]:
            return empty
        # n_threads=0: in this thread (1 would start a thread pool for every question)
        mask = None if allowed is None else allowed.astype(np.float32)
        rows, scores = self._retriever.retrieve(
            [tokens[0]], k=min(k, self.size), show_progress=False, n_threads=0, weight_mask=mask
        )
        keep = scores[0] > 0
        return scores[0][keep].astype(np.float32), rows[0][keep].astype(np.int64)
