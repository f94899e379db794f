"""A question -> the best chunks of the index: dense (vectors), lexical (BM25 or PostgreSQL
full-text search), or both fused. The store (`rag.corpus`) finds the candidates; ranking is here.

A chunk is scored by its best sentence as well as by the whole, because the prompt reads one
source and the answer is one sentence of it. The dense score is 0.3 x the chunk's cosine + 0.7 x
its best sentence's (every sentence has a vector: `rag.chunk_vectors`). The lexical score is
0.5 x BM25 + 0.5 x the best sentence's share of the question's words and close word pairs
(`rag.proximity`), each divided by its best.

Hybrid fuses the two by relative score fusion (as Weaviate does): each side scaled to [0, 1]
over its candidates (dense: min to max; lexical: divided by the best), then 0.4 x dense + 0.6 x
lexical. On squad-dev-a (articles 1-12 to choose, 13-24 to confirm), recall@1 went from 0.755
with weighted reciprocal-rank fusion to 0.806 with whole-chunk score fusion, and to 0.86 with
the sentence scores (benchmarks/RESULTS.md): what a prompt of one source needs. Optional: a
minimum score and MMR re-ranking for diversity.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
from numpy.typing import NDArray

from rag.chunks import Chunk
from rag.conversation import SearchContext
from rag.corpus import CandidateQuery, Candidates, Corpus
from rag.embeddings import Embedder
from rag.errors import IndexMismatch, UsageError
from rag.filters import Filter
from rag.proximity import Proximity
from rag.settings import RetrievalMode

Mode = RetrievalMode
MODES: tuple[str, ...] = get_args(Mode)
DENSE_WEIGHT = 0.4  # hybrid: dense against lexical
SENTENCE_WEIGHT = 0.7  # dense: the best sentence's cosine against the chunk's
PROXIMITY_WEIGHT = 0.5  # lexical: the best sentence's words and pairs against BM25
CONTEXT_MIX = 0.5  # a follow-up's vector: its own plus this much of its earlier questions'
VECTORS_KEPT = 4096  # question vectors kept for the follow-ups that come after them
MAX_TOP_K = 100


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float  # the mode's own score: dense score, BM25, or the fused score (hybrid, 0-1)
    chunk: Chunk
    dense_score: float | None = None  # cosines: 0.3 x the chunk's + 0.7 x its best sentence's
    bm25_score: float | None = None  # None: the chunk shares no term with the question
    collection: str | None = None  # its document's (None: a store that did not say)

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "dense_score": None if self.dense_score is None else round(self.dense_score, 6),
            "bm25_score": None if self.bm25_score is None else round(self.bm25_score, 6),
            **self.chunk.to_json(),
            **({} if self.collection is None else {"collection": self.collection}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hit:
        """A hit read back from `to_json` (extra keys, such as a citation number, ignored)."""
        fields = {f.name for f in dataclasses.fields(Chunk)}
        chunk = Chunk.from_json({k: v for k, v in data.items() if k in fields})
        return cls(
            data["rank"],
            data["score"],
            chunk,
            data["dense_score"],
            data["bm25_score"],
            data.get("collection"),
        )


class Retriever:
    def __init__(
        self,
        index: Corpus,
        embedder: Embedder,
        *,
        dense_weight: float = DENSE_WEIGHT,
    ) -> None:
        manifest = index.manifest
        if (manifest.embedding_model, manifest.dimension) != (embedder.name, embedder.dimension):
            raise IndexMismatch(
                f"the index was built with {manifest.embedding_model} ({manifest.dimension}d) but "
                f"{embedder.name} ({embedder.dimension}d) is selected: re-ingest, or select "
                "that model"
            )
        self.index = index
        self._embedder = embedder
        self._dense_weight = dense_weight
        self._vectors = VectorCache(self._embedder)
        self._proximity = Proximity()

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: Mode = "hybrid",
        min_score: float | None = None,
        mmr_lambda: float | None = None,
        context: SearchContext | None = None,
        where: Filter | None = None,
    ) -> list[Hit]:
        """The `k` best chunks. `min_score` drops hits below it, compared with the dense score
        (`Hit.dense_score`, a cosine) in dense and hybrid modes and with the BM25 score in bm25
        mode. `mmr_lambda` in [0, 1] re-ranks for diversity (1 = pure relevance). With a
        `context` of weight > 0 (a follow-up, `rag.conversation.search_context`), the query is
        also searched read with the earlier questions: its vector plus `CONTEXT_MIX` times
        theirs (each question's vector is kept from when it was asked, so this costs no encoder
        pass in a conversation), its words after theirs; the two rankings are fused, each scaled
        by its best, the second weighted `context.weight`. With `where`, only chunks of the
        documents it admits are candidates (on every side, before ranking)."""
        if not query.strip():
            raise UsageError("the question is empty")
        if not 1 <= k <= MAX_TOP_K:
            raise UsageError(f"top_k must be between 1 and {MAX_TOP_K}, got {k}")
        if mode not in MODES:
            raise UsageError(f"unknown retrieval mode {mode!r}: choose one of {', '.join(MODES)}")
        if mmr_lambda is not None and not 0.0 <= mmr_lambda <= 1.0:
            raise UsageError(f"mmr_lambda must be between 0 and 1, got {mmr_lambda}")
        pool = max(50, 4 * k)  # candidates from each side before fusion / MMR
        follow_up = context is not None and context.weight > 0 and bool(context.questions)
        earlier = context.questions if context is not None and follow_up else ()
        texts = [query, f"{' '.join(earlier)} {query}"] if follow_up else [query]
        vectors: list[NDArray[np.float32] | None] = [None] * len(texts)
        if mode != "bm25" or mmr_lambda is not None:
            vectors = list(self._query_vectors(query, earlier))
        vector = vectors[0]
        rankings = [
            self._candidates(text, v, mode, pool, mmr_lambda is not None, where)
            for text, v in zip(texts, vectors, strict=True)
        ]
        found, ranked = rankings[0]
        if context is not None and len(rankings) > 1:
            found, ranked = _fuse_rankings(rankings, context.weight)
        dense = dense_scores(found)
        if min_score is not None:
            own = found.lexical if mode == "bm25" else dense
            ranked = [(key, s) for key, s in ranked if own.get(key, -1e9) >= min_score]
        if mmr_lambda is not None and vector is not None:
            ranked = self._mmr(ranked, found.vectors, vector, k, mmr_lambda)
        return [
            Hit(
                rank,
                score,
                found.chunks[key],
                dense.get(key),
                found.lexical.get(key),
                found.collections.get(key),
            )
            for rank, (key, score) in enumerate(ranked[:k], start=1)
        ]

    def remember(self, questions: Sequence[str]) -> None:
        """Encode questions asked before (what each turn of a live conversation did), so the
        follow-ups after them find their vectors."""
        self._vectors.get(questions)

    def _query_vectors(self, query: str, earlier: Sequence[str]) -> list[NDArray[np.float32]]:
        """The query's vector, and with `earlier` questions also the query read with them: its
        vector plus `CONTEXT_MIX` times their mean, unit length again."""
        mine, *theirs = self._vectors.get([query, *earlier])
        if not theirs:
            return [mine]
        mixed = mine + CONTEXT_MIX * np.mean(theirs, axis=0)
        return [mine, (mixed / np.linalg.norm(mixed)).astype(np.float32)]

    def _candidates(
        self,
        text: str,
        vector: NDArray[np.float32] | None,
        mode: Mode,
        pool: int,
        with_vectors: bool,
        where: Filter | None = None,
    ) -> tuple[Candidates, list[tuple[int, float]]]:
        """One query's candidates from the store, and their ranking in `mode`."""
        query = CandidateQuery(
            text,
            vector,
            pool,
            dense=mode != "bm25",
            lexical=mode != "dense",
            with_vectors=with_vectors,
            filter=where,
        )
        found = self.index.candidates(query)
        return found, self._rank(mode, found, text, pool)

    def _rank(self, mode: Mode, found: Candidates, text: str, pool: int) -> list[tuple[int, float]]:
        """The candidates in `mode`'s order: the `pool` best of the dense side by dense score,
        the lexical side by BM25, or both fused with the candidates' sentence proximity."""
        scores = dense_scores(found)
        dense = dict(best({key: scores[key] for key in found.dense}, pool))
        if mode == "dense":
            return best(dense)
        if mode == "bm25":
            return best(found.lexical)
        # relative score fusion: each side's scores scaled to [0, 1] within its candidates (a
        # chunk the other side did not return counts as that side's 0), then weighted
        fused: dict[int, float] = {}
        if dense:
            low, high = min(dense.values()), max(dense.values())
            for row, score in dense.items():
                fused[row] = self._dense_weight * (score - low) / ((high - low) or 1.0)
        lexical = found.lexical
        close = self._proximity.scores(text, {k: found.chunks[k] for k in dense.keys() | lexical})
        for side, weight in ((lexical, 1 - PROXIMITY_WEIGHT), (close, PROXIMITY_WEIGHT)):
            top = max(side.values(), default=0.0) or 1.0
            for row, score in side.items():
                share = (1 - self._dense_weight) * weight * score / top
                fused[row] = fused.get(row, 0.0) + share
        return best(fused)

    def _mmr(
        self,
        ranked: list[tuple[int, float]],
        stored: dict[int, NDArray[np.float32]],
        query: NDArray[np.float32],
        k: int,
        lam: float,
    ) -> list[tuple[int, float]]:
        """Maximal marginal relevance: each pick trades relevance to the question against
        similarity to the chunks already picked."""
        if not ranked:
            return ranked
        vectors = np.stack([stored[key] for key, _ in ranked]).astype(np.float32)
        relevance = vectors @ query
        chosen: list[int] = []
        left = list(range(len(ranked)))
        while left and len(chosen) < k:
            if chosen:
                redundancy = (vectors[left] @ vectors[chosen].T).max(axis=1)
            else:
                redundancy = np.zeros(len(left), dtype=np.float32)
            gains = lam * relevance[left] - (1 - lam) * redundancy
            chosen.append(left.pop(int(np.argmax(gains))))
        return [ranked[i] for i in chosen]


def dense_scores(found: Candidates) -> dict[int, float]:
    """Each candidate's dense score: `SENTENCE_WEIGHT` x its best sentence's cosine + the rest x
    its own (an index without sentence vectors: its own alone)."""
    return {
        key: (1 - SENTENCE_WEIGHT) * cosine + SENTENCE_WEIGHT * found.sentence.get(key, cosine)
        for key, cosine in found.cosine.items()
    }


def best(scores: dict[int, float], n: int | None = None) -> list[tuple[int, float]]:
    """(key, score) pairs, best first, the first `n` of them (all: None)."""
    return sorted(scores.items(), key=lambda ks: -ks[1])[:n]


def _fuse_rankings(
    rankings: list[tuple[Candidates, list[tuple[int, float]]]], context_weight: float
) -> tuple[Candidates, list[tuple[int, float]]]:
    """The query's ranking and the query-with-context's as one: each scaled by its best score,
    weighted (the second by `context_weight`) and summed; a chunk one of them did not return
    counts as its 0. The candidates are merged, each keeping its better cosine and BM25 score."""
    merged = Candidates()
    fused: dict[int, float] = {}
    for (found, ranked), weight in zip(rankings, [1 - context_weight, context_weight], strict=True):
        top = max((score for _, score in ranked), default=0.0) or 1.0
        for key, score in ranked:
            fused[key] = fused.get(key, 0.0) + weight * score / top
        merged.chunks.update(found.chunks)
        merged.vectors.update(found.vectors)
        sides = ((merged.cosine, found.cosine), (merged.lexical, found.lexical))
        for mine, theirs in (*sides, (merged.sentence, found.sentence)):
            for key, value in theirs.items():
                mine[key] = max(value, mine.get(key, value))
    return merged, sorted(fused.items(), key=lambda rs: -rs[1])


class VectorCache:
    """Question vectors, kept (least recently used dropped past `VECTORS_KEPT`) so a follow-up
    finds its earlier questions' vectors without encoding them again; the missing ones are
    encoded in one batch. Safe across the retrieval threads."""

    def __init__(self, embedder: Embedder, size: int = VECTORS_KEPT) -> None:
        self._embedder, self._size = embedder, size
        self._kept: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, texts: Sequence[str]) -> list[NDArray[np.float32]]:
        """One vector per text, in order."""
        with self._lock:
            have = {t: self._kept[t] for t in texts if t in self._kept}
        missing = [t for t in dict.fromkeys(texts) if t not in have]
        fresh = dict(zip(missing, self._embedder.embed(missing), strict=True)) if missing else {}
        found = {**have, **fresh}
        with self._lock:
            for text in found:
                self._kept[text] = found[text]
                self._kept.move_to_end(text)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return [found[t] for t in texts]
