"""An answerer without a model: the retrieved sentence that shares the most (rare) words with the
question, quoted with its citation. It cannot make anything up, and it needs no model to run."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from rag.llm.mock import pieces
from rag.prompt import Prompt
from rag.sentences import SentenceScorer, split_sentences


class ExtractiveLLM:
    name = "extractive"
    context_tokens = 1_000_000  # it reads every source it is given

    def __init__(self) -> None:
        self._scorer = SentenceScorer()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def best_sentence(self, prompt: Prompt) -> tuple[str, int] | None:
        """The best sentence and its source number, or None when none shares a word."""
        candidates = [
            (sentence, number)
            for number, hit in enumerate(prompt.sources, start=1)
            for sentence in split_sentences(hit.chunk.text)
        ]
        if not candidates:
            return None
        scores = self._scorer.scores(prompt.question, [s for s, _ in candidates])
        # ties go to the better-ranked source
        best = max(range(len(candidates)), key=lambda i: (scores[i], -candidates[i][1]))
        return candidates[best] if scores[best] > 0 else None

    def stream(self, prompt: Prompt, cancel: threading.Event | None = None) -> Iterator[str]:
        found = self.best_sentence(prompt)
        text = "I don't know." if found is None else f"{found[0]} [{found[1]}]"
        for piece in pieces(text):
            if cancel is not None and cancel.is_set():
                return
            yield piece
