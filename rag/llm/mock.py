"""A deterministic stand-in LLM for tests and demos: it answers by quoting the first sentence of
its first source, one word at a time, with a configurable pause, and can be told to fail."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

from rag.errors import LLMError
from rag.prompt import Prompt

_PIECE = re.compile(r"\S+\s*")


def pieces(text: str) -> list[str]:
    """Word-sized pieces that join back to `text` (less leading space).

    >>> pieces("Denver won [1]")
    ['Denver ', 'won ', '[1]']
    """
    return _PIECE.findall(text)


class MockLLM:
    name = "mock"
    context_tokens = 8192

    def __init__(
        self, delay_s: float = 0.0, fail_after: int | None = None, reply: str | None = None
    ) -> None:
        self.delay_s = delay_s
        self.fail_after = fail_after
        self.reply = reply

    def count_tokens(self, text: str) -> int:
        return len(pieces(text))

    def answer_text(self, prompt: Prompt) -> str:
        if self.reply is not None:
            return self.reply
        if not prompt.sources:
            return "I don't know."
        first = re.split(r"(?<=[.!?])\s+", " ".join(prompt.sources[0].chunk.text.split()))[0]
        return f"According to [1], {first}"

    def stream(self, prompt: Prompt, cancel: threading.Event | None = None) -> Iterator[str]:
        for number, piece in enumerate(pieces(self.answer_text(prompt))):
            if self.fail_after is not None and number >= self.fail_after:
                raise LLMError(f"the mock LLM failed after {number} tokens, as configured")
            if self.delay_s:
                if cancel is not None:
                    if cancel.wait(self.delay_s):
                        return
                else:
                    time.sleep(self.delay_s)
            if cancel is not None and cancel.is_set():
                return
            yield piece
