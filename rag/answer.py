"""A question -> a stream of events: `Sources` (as soon as retrieval is done), then `Token`s as
the LLM produces them, then `Done` with usage and timings. Transports (CLI, HTTP) only frame
these events; an error raised while streaming is theirs to turn into an error event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rag.conversation import Message, recent_turns, search_context
from rag.filters import Filter
from rag.llm import LLM
from rag.prompt import Prompt, build_prompt, cite
from rag.retrieval import Hit, Mode, Retriever
from rag.settings import Settings

NO_ANSWER = "I don't know: nothing in the indexed documents matches the question."
ANSWER_MARGIN_TOKENS = 8  # slack for tokenizer differences between our count and the model's


@dataclass(frozen=True)
class Sources:
    kind: ClassVar[str] = "sources"  # the event's name on every wire (SSE, NDJSON, WebSocket)
    hits: tuple[Hit, ...]

    def to_json(self) -> list[dict[str, Any]]:
        """Each hit as `Hit.to_json` gives it, plus its citation `number` (1 for [1])."""
        return [
            {"number": number, **hit.to_json()} for number, hit in enumerate(self.hits, start=1)
        ]

    @classmethod
    def from_json(cls, data: list[dict[str, Any]]) -> Sources:
        return cls(tuple(Hit.from_json(item) for item in data))


@dataclass(frozen=True)
class Token:
    kind: ClassVar[str] = "token"
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Token:
        return cls(data["text"])


@dataclass(frozen=True)
class Done:
    kind: ClassVar[str] = "done"
    prompt_tokens: int
    completion_tokens: int
    retrieval_ms: float
    ttft_ms: float | None  # None when no token was produced
    total_ms: float
    cancelled: bool = False  # the consumer stopped the generation before its end
    history_turns: int = 0  # earlier questions of the conversation the prompt held
    conversation_id: str | None = None  # the server's conversation this answer belongs to
    request_id: str | None = None  # the server's id of the request (X-Request-ID)
    answer_id: str | None = None  # the server's id of the answer, to replay it (X-Answer-Id)

    def to_json(self) -> dict[str, Any]:
        return {
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "history_turns": self.history_turns,
            },
            "timings": {
                "retrieval_ms": round(self.retrieval_ms, 2),
                "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 2),
                "total_ms": round(self.total_ms, 2),
            },
            "cancelled": self.cancelled,
            **({"conversation_id": self.conversation_id} if self.conversation_id else {}),
            **({"request_id": self.request_id} if self.request_id else {}),
            **({"answer_id": self.answer_id} if self.answer_id else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Done:
        usage, timings = data["usage"], data["timings"]
        return cls(
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            retrieval_ms=timings["retrieval_ms"],
            ttft_ms=timings["ttft_ms"],
            total_ms=timings["total_ms"],
            cancelled=data.get("cancelled", False),
            history_turns=usage.get("history_turns", 0),
            conversation_id=data.get("conversation_id"),
            request_id=data.get("request_id"),
            answer_id=data.get("answer_id"),
        )


@dataclass(frozen=True)
class Error:
    """The answer failed after its first event (before it, a failure is raised instead)."""

    kind: ClassVar[str] = "error"
    message: str
    request_id: str | None = None  # the server's id of the request, to find it in the log

    def to_json(self) -> dict[str, Any]:
        named = {"request_id": self.request_id} if self.request_id else {}
        return {"message": self.message, **named}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Error:
        return cls(data["message"], data.get("request_id"))


Event = Sources | Token | Done | Error


EVENTS: dict[str, type[Sources] | type[Token] | type[Done] | type[Error]] = {
    kind.kind: kind for kind in (Sources, Token, Done, Error)
}


def collect(events: Iterable[Event]) -> dict[str, Any]:
    """The whole answer as one JSON object: `answer`, `sources`, then `done`'s fields (usage,
    timings, cancelled) or `error`. What `stream: false` answers and `rag ask --json` prints."""
    result: dict[str, Any] = {"answer": "", "sources": []}
    text: list[str] = []
    for event in events:
        match event:
            case Sources():
                result["sources"] = event.to_json()
            case Token():
                text.append(event.text)
            case Done():
                result.update(event.to_json())
            case Error():
                result["error"] = event.to_json()
    result["answer"] = "".join(text).strip()
    return result


@dataclass(frozen=True)
class Prepared:
    """A question after retrieval, ready for the LLM."""

    prompt: Prompt
    started: float  # perf_counter() when the question arrived: timings count from here
    retrieval_ms: float

    @property
    def sources(self) -> Sources:
        return Sources(self.prompt.sources)


class Answerer:
    def __init__(self, retriever: Retriever, llm: LLM, settings: Settings) -> None:
        self.retriever = retriever
        self.llm = llm
        self.settings = settings

    def prepare(
        self,
        question: str,
        *,
        top_k: int | None = None,
        retrieval: Mode | None = None,
        history: Sequence[Message] = (),
        where: Filter | None = None,
    ) -> Prepared:
        """Retrieval and the prompt: everything before the LLM. `history` is the conversation
        before the question (chat messages): retrieval reads its last questions, the prompt
        holds its last `Settings.history_turns` turns; `where` limits the sources to the
        documents it admits (none admitted: no sources, so no LLM call). Errors (a bad
        argument, an unusable index) are raised here, before any event."""
        started = time.perf_counter()
        mode = retrieval or self.settings.retrieval
        hits = self.retriever.search(
            question,
            top_k or self.settings.top_k,
            mode=mode,
            min_score=None if mode == "bm25" else self.settings.min_score,
            context=search_context(question, history),
            where=where,
        )
        budget = self.llm.context_tokens - self.settings.max_tokens - ANSWER_MARGIN_TOKENS
        prompt = build_prompt(
            question,
            hits,
            self.llm.count_tokens,
            budget,
            self.settings.prompt_sentences,
            history=[
                *(m for m in history if m.role == "system"),
                *recent_turns(history, self.settings.history_turns),
            ],
        )
        return Prepared(prompt, started, 1000 * (time.perf_counter() - started))

    def generate(
        self, prepared: Prepared, cancel: threading.Event | None = None
    ) -> Iterator[Token | Done]:
        """The answer's tokens as the LLM produces them, then `Done`; no LLM call when no
        source passed the minimum score. A set `cancel` ends it between two tokens."""
        prompt, started = prepared.prompt, prepared.started
        ttft_ms: float | None = None
        completion_tokens = 0
        prompt_tokens = 0
        if not prompt.sources:
            ttft_ms = 1000 * (time.perf_counter() - started)
            completion_tokens = 1
            yield Token(NO_ANSWER)
        else:
            prompt_tokens = self.llm.count_tokens(prompt.text)
            pieces: list[str] = []
            for piece in self.llm.stream(prompt, cancel):
                completion_tokens += 1
                if not pieces:  # the answer starts at its first non-blank character
                    piece = piece.lstrip()
                    if not piece:
                        continue
                    ttft_ms = 1000 * (time.perf_counter() - started)
                pieces.append(piece)
                yield Token(piece)
            number = cite("".join(pieces), prompt.sources)
            if number is not None and not (cancel is not None and cancel.is_set()):
                yield Token(f" [{number}]")
        yield Done(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            retrieval_ms=prepared.retrieval_ms,
            ttft_ms=ttft_ms,
            total_ms=1000 * (time.perf_counter() - started),
            cancelled=cancel is not None and cancel.is_set(),
            history_turns=prompt.turns,
        )

    def stream(
        self,
        question: str,
        *,
        top_k: int | None = None,
        retrieval: Mode | None = None,
        cancel: threading.Event | None = None,
        history: Sequence[Message] = (),
        where: Filter | None = None,
    ) -> Iterator[Event]:
        """Events for one question. Validation errors are raised before the first event."""
        prepared = self.prepare(
            question, top_k=top_k, retrieval=retrieval, history=history, where=where
        )
        yield prepared.sources
        yield from self.generate(prepared, cancel)

    def answer(self, question: str, **options: Any) -> tuple[str, Sources, Done]:
        """The whole answer at once (the same events, collected)."""
        text, sources, done = [], Sources(()), None
        for event in self.stream(question, **options):
            if isinstance(event, Sources):
                sources = event
            elif isinstance(event, Token):
                text.append(event.text)
            elif isinstance(event, Done):
                done = event
        assert done is not None
        return "".join(text).strip(), sources, done
