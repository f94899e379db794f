"""Measuring the pipeline on a SQuAD-format file: retrieval recall@k and MRR@10 (a hit is a chunk
whose character range in its article covers a gold answer span of the question), and answer
exact match / token F1 with the official SQuAD normalisation."""

from __future__ import annotations

import collections
import re
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rag.retrieval import Hit
from rag.squad import Article, Question

RECALL_KS = (1, 5, 10)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalisation: lower case, no punctuation, no articles, single spaces.

    >>> normalize_answer("The  Denver Broncos!")
    'denver broncos'
    """
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """Best token-overlap F1 against any gold answer."""
    best = 0.0
    predicted = normalize_answer(prediction).split()
    for gold in golds:
        expected = normalize_answer(gold).split()
        common = collections.Counter(predicted) & collections.Counter(expected)
        overlap = sum(common.values())
        if overlap == 0:
            continue
        precision, recall = overlap / len(predicted), overlap / len(expected)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def is_hit(hit: Hit, article: Article, question: Question) -> bool:
    chunk = hit.chunk
    if not chunk.source.endswith("/" + article.file_name) and chunk.source != article.file_name:
        return False
    return any(chunk.start <= start and end <= chunk.end for start, end in question.spans)


@dataclass
class RetrievalScores:
    hits_at: dict[int, int] = field(default_factory=lambda: dict.fromkeys(RECALL_KS, 0))
    n_questions: int = 0
    reciprocal_ranks: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    by_kind: dict[str, RetrievalScores] = field(default_factory=dict)  # "followup", "switch"

    def add(self, first_hit_rank: int | None, latency_ms: float) -> None:
        self.n_questions += 1
        self.latencies_ms.append(latency_ms)
        if first_hit_rank is None:
            return
        for k in self.hits_at:
            if first_hit_rank <= k:
                self.hits_at[k] += 1
        if first_hit_rank <= 10:
            self.reciprocal_ranks += 1 / first_hit_rank

    def recall(self, k: int) -> float:
        return self.hits_at[k] / self.n_questions if self.n_questions else 0.0

    @property
    def mrr_at_10(self) -> float:
        return self.reciprocal_ranks / self.n_questions if self.n_questions else 0.0

    def latency_ms(self, quantile: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


def evaluate_retrieval(
    articles: Sequence[Article],
    search: Callable[[Question, int], list[Hit]],
    *,
    k: int = 5,
    limit: int | None = None,
    before: Callable[[Question], None] | None = None,
) -> RetrievalScores:
    """Ask every question (or `limit` of them, spread over all articles) through `search` and
    score where the gold span lands; conversational questions are scored by kind as well.
    `before` runs, untimed, before each question (e.g. what its conversation did earlier)."""
    ks = sorted({*RECALL_KS, k})
    scores = RetrievalScores(hits_at=dict.fromkeys(ks, 0))
    for article, question in sample(articles, limit):
        if before is not None:
            before(question)
        started = time.perf_counter()
        hits = search(question, max(k, 10))
        latency_ms = 1000 * (time.perf_counter() - started)
        first = next((h.rank for h in hits if is_hit(h, article, question)), None)
        scores.add(first, latency_ms)
        if question.kind is not None:
            kind = scores.by_kind.setdefault(question.kind, RetrievalScores(dict.fromkeys(ks, 0)))
            kind.add(first, latency_ms)
    return scores


def sample(articles: Sequence[Article], limit: int | None) -> list[tuple[Article, Question]]:
    """All (article, question) pairs, or `limit` of them evenly spaced (deterministic)."""
    pairs = [(article, question) for article in articles for question in article.questions]
    if limit is None or limit >= len(pairs):
        return pairs
    step = len(pairs) / max(limit, 1)
    return [pairs[int(i * step)] for i in range(limit)]
