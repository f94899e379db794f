"""Hits built by hand, and LLMs that behave in ways tests can watch (a gate, an endless
stream), for the layers above retrieval."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from rag.chunks import Chunk
from rag.errors import LLMError
from rag.prompt import Prompt
from rag.retrieval import Hit


def hit(text: str, rank: int = 1, title: str = "Doc", source: str = "docs/doc.md") -> Hit:
    chunk = Chunk(f"{source}#{rank}", source, title, rank - 1, 0, len(text), text, "")
    return Hit(rank, 1.0 / rank, chunk, 0.9, None)


class GatedLLM:
    """Yields `first`, then waits until `gate` is set before yielding `rest`: a test can check
    that the first token reached the client while the generator is still blocked."""

    name = "gated"
    context_tokens = 8192

    def __init__(self, first: str = "Denver ", rest: tuple[str, ...] = ("won", " [1]")) -> None:
        self.first, self.rest = first, rest
        self.gate = threading.Event()
        self.started = threading.Event()  # set when a generation began

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, prompt: Prompt, cancel: threading.Event | None = None) -> Iterator[str]:
        self.started.set()
        yield self.first
        if not self.gate.wait(30):
            raise LLMError("the test never opened the gate")
        yield from self.rest


class EndlessLLM:
    """Yields numbered tokens every `delay_s` until cancelled, counting what it produced."""

    name = "endless"
    context_tokens = 8192

    def __init__(self, delay_s: float = 0.02, limit: int = 10_000) -> None:
        self.delay_s, self.limit = delay_s, limit
        self.produced = 0
        self.generations = 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, prompt: Prompt, cancel: threading.Event | None = None) -> Iterator[str]:
        self.generations += 1
        for number in range(self.limit):
            if cancel is not None and cancel.wait(self.delay_s):
                return
            self.produced += 1
            yield f"t{number} "
