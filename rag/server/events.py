"""One answer as typed events, the same for every transport: `Sources`, then `Token`s, then
`Done`; a failure after the first event becomes a final `Error` instead of `Done`. The routes
only frame these (SSE, NDJSON lines, WebSocket messages, OpenAI chunks, one JSON), each by
`match`ing on the type; `sse_response` and `message` are the framing they share."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent

from rag.answer import Done, Error, Event, Prepared, Sources, Token
from rag.errors import RagError
from rag.metrics import Metrics
from rag.server.answer_log import KeptAnswer
from rag.server.answer_mirror import RemoteAnswer
from rag.server.pool import Ticket
from rag.server.service import Service

log = logging.getLogger("rag.server")

E = TypeVar("E", Done, Error)
NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SHUTDOWN_GRACE_S = 2.0


async def answer_stream(
    service: Service,
    ticket: Ticket,
    prepared: Prepared,
    cancel: threading.Event | None = None,
    timings: dict[str, Any] | None = None,
    shutdown: anyio.Event | None = None,
    raise_errors: bool = False,
    request_id: str | None = None,
    answer_id: str | None = None,
) -> AsyncGenerator[Event, None]:
    """The events of one prepared question; `timings` (when given) receives the `done`
    payload, for the access log. When `shutdown` is set (the server is stopping), the
    generation is cancelled and the stream ends with an `error` event saying so. With
    `raise_errors` (a whole answer in one response: no byte is sent yet), a failure is raised
    for the app to map to its status (504 for a timeout, 502 for the LLM) instead. The final
    event names `request_id` (and `done`, `answer_id`); the metrics hear how the answer ended."""
    cancel = cancel or threading.Event()
    stopping = asyncio.create_task(_cancel_on(shutdown, cancel)) if shutdown else None
    entered = False
    meter = Meter(service.metrics)
    try:
        yield prepared.sources
        produce = partial(service.generate, prepared)
        entered = True
        async for event in service.pool.stream(ticket, produce, cancel):
            if isinstance(event, Token):
                meter.token()
                yield event
            elif shutdown is not None and shutdown.is_set():
                yield meter.ended(Error(SHUTTING_DOWN, request_id))
            else:
                event = meter.ended(replace(event, request_id=request_id, answer_id=answer_id))
                if timings is not None:
                    timings.update(event.to_json())
                yield event
    except RagError as err:
        meter.ended(Error(str(err), request_id))
        if raise_errors:
            raise
        yield Error(str(err), request_id)
    except Exception:
        meter.ended(Error("", request_id))
        if raise_errors:
            raise
        log.exception("generation failed (request %s)", request_id)
        yield Error("the answer failed on the server (the server log has details)", request_id)
    finally:
        meter.close()
        if stopping is not None:
            stopping.cancel()
        if not entered:
            ticket.release()


class Meter:
    """What the metrics learn of one answer: the gaps between its tokens as relayed, and how
    it ended (an answer closed before its final event was left by its client)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.last: float | None = None
        self.final: Done | Error | None = None

    def token(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.metrics.token_gap(now - self.last)
        self.last = now

    def ended(self, event: E) -> E:
        if self.final is None:
            self.final = event
        return event

    def close(self) -> None:
        match self.final:
            case None:
                self.metrics.answer("disconnected")
            case Error():
                self.metrics.answer("failed")
            case Done() as done:
                self.metrics.answer(
                    "cancelled" if done.cancelled else "done",
                    None if done.ttft_ms is None else done.ttft_ms / 1000,
                    done.total_ms / 1000,
                    done.prompt_tokens,
                    done.completion_tokens,
                )


SHUTTING_DOWN = "the server is shutting down: the answer was cut short; ask again"


async def _cancel_on(shutdown: anyio.Event, cancel: threading.Event) -> None:
    await shutdown.wait()
    cancel.set()


def message(event: Event) -> dict[str, Any]:
    """An event as one self-describing JSON object (NDJSON lines, WebSocket messages):
    `{"type": "token", "text": "..."}`, `{"type": "sources", "sources": [...]}`."""
    match event:
        case Sources():
            return {"type": event.kind, event.kind: event.to_json()}
        case Token() | Done() | Error():
            return {"type": event.kind, **event.to_json()}


def sse_response(
    content: AsyncIterator[ServerSentEvent],
    service: Service,
    shutdown: anyio.Event,
    headers: dict[str, str] | None = None,
) -> EventSourceResponse:
    """SSE with pings during silences; on server shutdown the stream gets `SHUTDOWN_GRACE_S`
    to end with its last event (uvicorn itself waits 5 s, see `rag serve`)."""
    return EventSourceResponse(
        content,
        ping=service.settings.ping_interval_s,
        headers={**NO_BUFFERING, **(headers or {})},
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_S,
    )


async def numbered_sse(
    kept: KeptAnswer | RemoteAnswer, after: int = 0
) -> AsyncIterator[ServerSentEvent]:
    """A kept answer's events after number `after` as SSE, each with the `id:` a reconnecting
    client sends back as `Last-Event-ID` (`<answer id>:<number>`)."""
    async for number, event in kept.follow(after):
        yield ServerSentEvent(
            data=dumps(event.to_json()), event=event.kind, id=f"{kept.id}:{number}"
        )


def dumps(payload: Any) -> str:
    """One line of JSON: newlines, U+2028 and every non-ASCII character escaped, so a payload
    can never break an SSE `data:` line or an NDJSON record."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
