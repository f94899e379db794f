"""Hits built by hand, and LLMs that behave in ways tests can watch (a gate, an endless
stream), for the layers above retrieval."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from rag.chunks import Chunk
from rag.corpus import CandidateQuery, Candidates, IndexInfo
from rag.errors import LLMError
from rag.prompt import Prompt
from rag.retrieval import Hit


def hit(text: str, rank: int = 1, title: str = "Doc", source: str = "docs/doc.md") -> Hit:
    chunk = Chunk(f"{source}#{rank}", source, title, rank - 1, 0, len(text), text, "")
    return Hit(rank, 1.0 / rank, chunk, 0.9, None)


class FakeLLM:
    """What every fake here shares: a large context, and a token per word."""

    context_tokens = 8192

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class GatedLLM(FakeLLM):
    """Yields `first`, then waits until `gate` is set before yielding `rest`: a test can check
    that the first token reached the client while the generator is still blocked. A cancel
    while it waits ends the generation (`ended` is set then), as a backend stuck on a dead
    socket is ended by the service giving up on it."""

    name = "gated"

    def __init__(self, first: str = "Denver ", rest: tuple[str, ...] = ("won", " [1]")) -> None:
        self.first, self.rest = first, rest
        self.gate = threading.Event()
        self.started = threading.Event()  # set when a generation began
        self.ended = threading.Event()  # set when a generation ended, however

    def stream(self, prompt: Prompt, cancel: threading.Event | None = None) -> Iterator[str]:
        self.started.set()
        try:
            yield self.first
            deadline = time.monotonic() + 30
            while not self.gate.wait(0.005):
                if cancel is not None and cancel.is_set():
                    return
                if time.monotonic() > deadline:
                    raise LLMError("the test never opened the gate")
            yield from self.rest
        finally:
            self.ended.set()


class EndlessLLM(FakeLLM):
    """Yields numbered tokens every `delay_s` until cancelled, counting what it produced;
    `ended` is set when a generation ended (cancelled, closed or at `limit`)."""

    name = "endless"

    def __init__(self, delay_s: float = 0.02, limit: int = 10_000) -> None:
        self.delay_s, self.limit = delay_s, limit
        self.produced = 0
        self.generations = 0
        self.ended = threading.Event()

    def stream(self, prompt: Prompt, cancel: threading.Event | None = None) -> Iterator[str]:
        self.generations += 1
        try:
            for number in range(self.limit):
                if cancel is not None and cancel.wait(self.delay_s):
                    return
                self.produced += 1
                yield f"t{number} "
        finally:
            self.ended.set()


class FixedCorpus:
    """A corpus that answers every question with the same candidates, given by hand: the
    scores retrieval computes from them can be checked against arithmetic done in the test."""

    def __init__(self, found: Candidates, model: str = "hashing-384", dimension: int = 384) -> None:
        self.found = found
        self.manifest = IndexInfo(model, dimension, 40, 8, "flat", {}, len(found.chunks), True)
        self.queries: list[CandidateQuery] = []

    def candidates(self, query: CandidateQuery) -> Candidates:
        self.queries.append(query)
        return self.found


class ScriptedOcr:
    """An OCR engine that "reads" the next of `pages` from each picture it is given, and keeps
    the pictures (PNG bytes) it was asked to read."""

    def __init__(self, pages: list[str]) -> None:
        self.pages = list(pages)
        self.images: list[bytes] = []

    def read_image(self, png: bytes) -> str:
        self.images.append(png)
        return self.pages[len(self.images) - 1]
