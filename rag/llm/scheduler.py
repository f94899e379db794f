"""The engine's loop: up to `slots` answers decoded together, one token each per step.

A request waits in arrival order for a free sequence; once admitted, its prompt is evaluated in
chunks beside the others' decoding (a long prompt does not stall the running answers), then one
token per step. An answer ends at an end-of-generation token, a stop string, `max_tokens`, or a
cancel (seen between two steps: a client that leaves costs at most one more token of its own
sequence). Text is sent as it is decoded, less what could be the start of a stop string.

The loop knows nothing of llama.cpp (a `Decoding`) nor of the pipe (`send`): tests drive it with
a scripted decoder.
"""

from __future__ import annotations

import codecs
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rag.errors import LLMError


class Started(Protocol):
    """A sequence the decoder runs: the step that gave it logits sets `output_index` >= 0."""

    seq: int
    output_index: int


class Decoding(Protocol):
    context_tokens: int

    def tokenize(self, text: str) -> list[int]: ...
    def piece(self, token: int) -> bytes: ...
    def is_end(self, token: int) -> bool: ...
    def start(self, seq: int, prompt: Sequence[int], rng: np.random.Generator | None) -> Any: ...
    def step(self, sequences: Sequence[Any], last: Sequence[int | None]) -> None: ...
    def sample(self, running: Any, temperature: float) -> int: ...
    def free(self, running: Any) -> None: ...


@dataclass(frozen=True)
class Request:
    id: int
    prompt: str
    max_tokens: int = 48
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int = 0


class Text:
    """Token bytes in, text out, held back while it could begin a stop string.

    >>> t = Text(("\\nQuestion:",)); t.add(b"Paris\\nQu"), t.add(b"estion:")
    (('Paris', False), ('', True))
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = tuple(s for s in stop if s)
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self.held = ""

    def add(self, data: bytes) -> tuple[str, bool]:
        """(text that can be sent now, whether a stop string was reached)."""
        self.held += self._utf8.decode(data)
        found = [i for i in (self.held.find(s) for s in self.stop) if i >= 0]
        if found:
            text, self.held = self.held[: min(found)], ""
            return text, True
        keep = max(
            (k for s in self.stop for k in range(1, len(s)) if self.held.endswith(s[:k])),
            default=0,
        )
        text = self.held[: len(self.held) - keep]
        self.held = self.held[len(text) :]
        return text, False

    def flush(self) -> str:
        text, self.held = self.held + self._utf8.decode(b"", final=True), ""
        return text


@dataclass
class Active:
    request: Request
    running: Any
    text: Text
    last: int | None = None
    tokens: int = 0
    prompt_tokens: int = 0
    cancelled: bool = False


@dataclass
class Scheduler:
    decoder: Decoding
    slots: int
    send: Callable[[dict[str, Any]], None]
    waiting: deque[Request] = field(default_factory=deque)
    active: dict[int, Active] = field(default_factory=dict)  # by request id

    def submit(self, request: Request) -> None:
        self.waiting.append(request)

    def cancel(self, request_id: int) -> None:
        for request in self.waiting:
            if request.id == request_id:
                self.waiting.remove(request)
                self.send({"id": request_id, "end": "cancelled", "tokens": 0})
                return
        if request_id in self.active:
            self.active[request_id].cancelled = True

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.active)

    def step(self) -> None:
        """Admit what fits, end what was cancelled, then one decode for every sequence."""
        for active in [a for a in self.active.values() if a.cancelled]:
            self._end(active, "cancelled")
        self._admit()
        if not self.active:
            return
        actives = list(self.active.values())
        try:
            self.decoder.step([a.running for a in actives], [a.last for a in actives])
        except LLMError as err:  # e.g. no room left in the KV cache: these answers fail
            for active in actives:
                del self.active[active.request.id]
                self.decoder.free(active.running)
                self.send({"id": active.request.id, "error": str(err)})
            return
        for active in actives:
            if active.running.output_index >= 0:
                self._advance(active)

    def _admit(self) -> None:
        in_use = {a.running.seq for a in self.active.values()}
        free = [seq for seq in range(1, self.slots + 1) if seq not in in_use]
        while self.waiting and free:
            request = self.waiting.popleft()
            try:
                tokens = self.decoder.tokenize(request.prompt)
                rng = np.random.default_rng(request.seed) if request.temperature > 0 else None
                running = self.decoder.start(free[0], tokens, rng)
            except LLMError as err:
                self.send({"id": request.id, "error": str(err)})
                continue
            free.pop(0)
            self.active[request.id] = Active(
                request, running, Text(request.stop), prompt_tokens=len(tokens)
            )

    def _advance(self, active: Active) -> None:
        token = self.decoder.sample(active.running, active.request.temperature)
        active.last = token
        if self.decoder.is_end(token):
            self._end(active, "stop")
            return
        active.tokens += 1
        text, stopped = active.text.add(self.decoder.piece(token))
        if text:
            self.send({"id": active.request.id, "text": text})
        if stopped:
            self._end(active, "stop", flush=False)
        elif active.tokens >= active.request.max_tokens:
            self._end(active, "length")

    def _end(self, active: Active, reason: str, flush: bool = True) -> None:
        del self.active[active.request.id]
        self.decoder.free(active.running)
        rest = active.text.flush() if flush and reason != "cancelled" else ""
        if rest:
            self.send({"id": active.request.id, "text": rest})
        self.send(
            {
                "id": active.request.id,
                "end": reason,
                "tokens": active.tokens,
                "prompt_tokens": active.prompt_tokens,
            }
        )
