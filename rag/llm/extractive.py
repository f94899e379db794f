"""An answerer without a model: the retrieved sentence that shares the most (rare) words with the
question, quoted with its citation. It cannot make anything up, and it needs no model to run."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator

from rag.llm.mock import pieces
from rag.prompt import Prompt

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_WORD = re.compile(r"\w+")
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


class ExtractiveLLM:
    name = "extractive"
    context_tokens = 1_000_000  # it reads every source it is given

    def __init__(self) -> None:
        import Stemmer

        self._stem = Stemmer.Stemmer("english").stemWord

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def _terms(self, text: str) -> set[str]:
        words = (w.lower() for w in _WORD.findall(text))
        return {self._stem(w) for w in words if w not in STOP_WORDS}

    def best_sentence(self, prompt: Prompt) -> tuple[str, int] | None:
        """The best sentence and its source number, or None when nothing overlaps."""
        candidates = [
            (sentence, number)
            for number, hit in enumerate(prompt.sources, start=1)
            for sentence in _SENTENCE.split(" ".join(hit.chunk.text.split()))
            if sentence.strip() and not sentence.startswith("#")
        ]
        if not candidates:
            return None
        terms = [self._terms(s) for s, _ in candidates]
        question = self._terms(prompt.question)
        document_frequency = {t: sum(t in ts for ts in terms) for t in question}
        best, best_score = None, 0.0
        for (sentence, number), sentence_terms in zip(candidates, terms, strict=True):
            score = sum(
                math.log(1 + len(candidates) / document_frequency[t])
                for t in question & sentence_terms
            )
            score -= 0.05 * number  # ties go to the better-ranked source
            if score > best_score:
                best, best_score = (sentence, number), score
        return best

    def stream(self, prompt: Prompt, cancel: threading.Event | None = None) -> Iterator[str]:
        found = self.best_sentence(prompt)
        text = "I don't know." if found is None else f"{found[0]} [{found[1]}]"
        for piece in pieces(text):
            if cancel is not None and cancel.is_set():
                return
            yield piece
