"""Hits built by hand, and LLMs that behave in ways tests can watch (a gate, an endless
stream), for the layers above retrieval."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

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


class ScriptedDecoder:
    """A decoder for the engine's scheduler whose tokens are words: a prompt is read `chunk`
    tokens per step, then its answer (`reply(prompt)`) comes one word per step, then an end
    token. `steps` records what each step carried: ("prompt", seq, n) and ("token", seq)."""

    END = 0

    def __init__(self, reply: Callable[[str], str], chunk: int = 8, context_tokens: int = 512):
        self.reply, self.chunk, self.context_tokens = reply, chunk, context_tokens
        self.vocab: list[str] = ["<end>"]
        self.steps: list[list[tuple[Any, ...]]] = []
        self.freed: list[int] = []

    def _id(self, word: str) -> int:
        if word not in self.vocab:
            self.vocab.append(word)
        return self.vocab.index(word)

    def tokenize(self, text: str) -> list[int]:
        return [self._id(word) for word in re.findall(r"\S+\s*|\s+", text)]

    def piece(self, token: int) -> bytes:
        return self.vocab[token].encode()

    def is_end(self, token: int) -> bool:
        return token == self.END

    def start(self, seq: int, prompt: Sequence[int], rng: Any) -> Any:
        if len(prompt) >= self.context_tokens:
            raise LLMError(f"the prompt takes {len(prompt)} tokens")
        text = "".join(self.vocab[t] for t in prompt)
        answer = [*self.tokenize(self.reply(text)), self.END]
        return SimpleNamespace(seq=seq, pending=len(prompt), answer=answer, output_index=-1)

    def step(self, sequences: Sequence[Any], last: Sequence[int | None]) -> None:
        carried: list[tuple[Any, ...]] = []
        for index, running in enumerate(sequences):
            running.output_index = -1
            if running.pending:
                n = min(self.chunk, running.pending)
                running.pending -= n
                carried.append(("prompt", running.seq, n))
                if not running.pending:
                    running.output_index = index
            elif last[index] is not None:
                carried.append(("token", running.seq))
                running.output_index = index
        self.steps.append(carried)

    def sample(self, running: Any, temperature: float) -> int:
        return int(running.answer.pop(0)) if running.answer else self.END

    def free(self, running: Any) -> None:
        self.freed.append(running.seq)
