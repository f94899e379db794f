"""Sentences of retrieved text, scored by the question's words (stemmed, stop words out, rarer
words weigh more). The extractive answerer quotes the best one; the prompt can keep only the
best few of each source, so a small model reads less and the answer is nearer the question."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_BOUNDARY = re.compile(rf"{_SENTENCE.pattern}|\n+")
WORD = re.compile(r"\w+")
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "with",
    ]
)


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, whitespace folded; markdown headings dropped.

    >>> split_sentences("# Title\\n\\nIt rained. Then, at 5 p.m., it stopped!")
    ['It rained.', 'Then, at 5 p.m., it stopped!']
    """
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    folded = " ".join(" ".join(lines).split())
    return [s for s in _SENTENCE.split(folded) if s.strip()]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Where the sentences of `text` are, as (start, end) character offsets: a sentence ends at
    . ! or ? before a capital or digit, or at a line break (a heading or list item is one). Each
    span is a sentence of a chunk with its own vector (`rag.chunk_vectors`).

    >>> sentence_spans("# Title\\nIt rained. Then, at 5 p.m., it stopped!")
    [(0, 7), (8, 18), (19, 47)]
    """
    spans, start = [], 0
    for boundary in _BOUNDARY.finditer(text):
        if text[start : boundary.start()].strip():
            spans.append((start, boundary.start()))
        start = boundary.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans or [(0, len(text))]


class SentenceScorer:
    def __init__(self) -> None:
        import Stemmer

        self._stem = Stemmer.Stemmer("english").stemWord

    def terms(self, text: str) -> set[str]:
        words = (w.lower() for w in WORD.findall(text))
        return {self._stem(w) for w in words if w not in STOP_WORDS}

    def scores(self, question: str, sentences: Sequence[str]) -> list[float]:
        """For each sentence, the summed inverse frequency (among `sentences`) of the question's
        terms it contains: 0 for a sentence sharing no term."""
        terms = [self.terms(s) for s in sentences]
        wanted = self.terms(question)
        frequency = {t: sum(t in ts for ts in terms) for t in wanted}
        return [
            sum(math.log(1 + len(sentences) / frequency[t]) for t in wanted & ts) for ts in terms
        ]

    def focus(self, question: str, text: str, keep: int) -> str:
        """The `keep` best sentences of `text` for the question, in their original order."""
        sentences = split_sentences(text)
        if len(sentences) <= keep:
            return " ".join(sentences)
        scores = self.scores(question, sentences)
        best = sorted(sorted(range(len(sentences)), key=lambda i: -scores[i])[:keep])
        return " ".join(sentences[i] for i in best)
