"""One answer as named events, the same for every transport: `sources`, then `token`s, then
`done`; a failure after the first event becomes a final `error` event instead of `done`. The
routes only frame these (SSE, NDJSON lines, WebSocket messages, OpenAI chunks, one JSON)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncGenerator
from functools import partial
from typing import Any

import anyio

from rag.answer import Prepared, Sources, Token
from rag.errors import RagError
from rag.server.pool import Ticket
from rag.server.service import Service

log = logging.getLogger("rag.server")

Event = tuple[str, Any]  # (name, JSON payload): sources is a list, the others objects


async def answer_stream(
    service: Service,
    ticket: Ticket,
    prepared: Prepared,
    cancel: threading.Event | None = None,
    timings: dict[str, Any] | None = None,
    shutdown: anyio.Event | None = None,
    raise_errors: bool = False,
) -> AsyncGenerator[Event, None]:
    """The events of one prepared question; `timings` (when given) receives the `done`
    payload, for the access log. When `shutdown` is set (the server is stopping), the
    generation is cancelled and the stream ends with an `error` event saying so. With
    `raise_errors` (a whole answer in one response: no byte is sent yet), a failure is raised
    for the app to map to its status (504 for a timeout, 502 for the LLM) instead."""
    cancel = cancel or threading.Event()
    stopping = asyncio.create_task(_cancel_on(shutdown, cancel)) if shutdown else None
    entered = False
    try:
        yield Sources.kind, prepared.sources.to_json()
        produce = partial(service.generate, prepared)
        entered = True
        async for event in service.pool.stream(ticket, produce, cancel):
            if isinstance(event, Token):
                yield event.kind, event.to_json()
            elif shutdown is not None and shutdown.is_set():
                yield "error", {"message": SHUTTING_DOWN}
            else:
                done = event.to_json()
                if timings is not None:
                    timings.update(done)
                yield event.kind, done
    except RagError as err:
        if raise_errors:
            raise
        yield "error", {"message": str(err)}
    except Exception:
        if raise_errors:
            raise
        log.exception("generation failed")
        yield "error", {"message": "the answer failed on the server (the server log has details)"}
    finally:
        if stopping is not None:
            stopping.cancel()
        if not entered:
            ticket.release()


SHUTTING_DOWN = "the server is shutting down: the answer was cut short; ask again"


async def _cancel_on(shutdown: anyio.Event, cancel: threading.Event) -> None:
    await shutdown.wait()
    cancel.set()


def dumps(payload: Any) -> str:
    """One line of JSON: newlines, U+2028 and every non-ASCII character escaped, so a payload
    can never break an SSE `data:` line or an NDJSON record."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
