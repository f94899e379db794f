"""`POST /v1/ask`: one question, answered as Server-Sent Events (default), NDJSON lines
(`Accept: application/x-ndjson`, for `curl -N` and scripts) or one JSON object (`stream: false`).

Everything that can fail on the request itself (validation, a full queue, no index) fails
before the first byte, with a status code; after it, only an `error` event can say so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from rag.answer import Prepared
from rag.errors import QuestionTooLong
from rag.server.events import Event, answer_stream, dumps
from rag.server.pool import Ticket
from rag.server.schemas import AskRequest
from rag.server.service import Service

router = APIRouter(tags=["answers"])
NDJSON = "application/x-ndjson"
NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SHUTDOWN_GRACE_S = 2.0


async def get_service(request: Request) -> Service:
    # async: FastAPI would run a plain function in its thread pool, a thread hop per request
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def admit_and_prepare(
    service: Service, question: str, top_k: int | None, retrieval: Any
) -> tuple[Ticket, Prepared]:
    """A place in the pool, then retrieval in a worker thread; errors leave no place taken."""
    limit = service.settings.max_question_chars
    if len(question) > limit:
        raise QuestionTooLong(f"the question is {len(question)} characters; the limit is {limit}")
    ticket = service.pool.admit()
    try:
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(
            service.retrieval_executor, service.prepare, question, top_k, retrieval
        )
    except BaseException:
        ticket.release()
        raise
    return ticket, prepared


def message(name: str, payload: Any) -> dict[str, Any]:
    """An event as one self-describing JSON object (NDJSON lines, WebSocket messages):
    `{"type": "token", "text": "..."}`, `{"type": "sources", "sources": [...]}`."""
    return {"type": name, name: payload} if isinstance(payload, list) else {"type": name, **payload}


async def sse_stream(events: AsyncIterator[Event]) -> AsyncIterator[ServerSentEvent]:
    async for name, payload in events:
        yield ServerSentEvent(data=dumps(payload), event=name)


async def ndjson_stream(events: AsyncIterator[Event]) -> AsyncIterator[str]:
    async for name, payload in events:
        yield dumps(message(name, payload)) + "\n"


async def collect(events: AsyncIterator[Event]) -> dict[str, Any]:
    """The whole answer as one object; an error event becomes `error` (and no `usage`)."""
    result: dict[str, Any] = {"answer": "", "sources": []}
    text: list[str] = []
    async for name, payload in events:
        if name == "sources":
            result["sources"] = payload
        elif name == "token":
            text.append(payload["text"])
        elif name == "error":
            result["error"] = payload
        else:
            result.update(payload)
    result["answer"] = "".join(text).strip()
    return result


@router.post(
    "/v1/ask",
    summary="Ask a question; the answer streams as SSE (default), NDJSON or one JSON",
    responses={
        200: {
            "description": "`text/event-stream` (events sources, token..., done | error), "
            "`application/x-ndjson` when asked by Accept, or JSON with `stream: false`",
            "content": {"text/event-stream": {}, NDJSON: {}},
        },
        422: {"description": "invalid request"},
        429: {"description": "queue full; see Retry-After"},
        503: {"description": "no index or LLM not ready"},
    },
)
async def ask(body: AskRequest, request: Request, service: ServiceDep) -> Response:
    ticket, prepared = await admit_and_prepare(service, body.question, body.top_k, body.retrieval)
    timings: dict[str, Any] = request.scope.setdefault("state", {}).setdefault("answer", {})
    shutdown = anyio.Event()  # set by sse-starlette when the server begins to stop
    events = answer_stream(
        service, ticket, prepared, timings=timings, shutdown=shutdown, raise_errors=not body.stream
    )
    if not body.stream:  # a failure was raised: the app answers it with its own status
        return JSONResponse(await collect(events))
    if NDJSON in request.headers.get("accept", ""):
        return StreamingResponse(ndjson_stream(events), media_type=NDJSON, headers=NO_BUFFERING)
    return sse_response(sse_stream(events), service, shutdown)


def sse_response(
    content: AsyncIterator[ServerSentEvent], service: Service, shutdown: anyio.Event
) -> EventSourceResponse:
    """SSE with pings during silences; on server shutdown the stream gets `SHUTDOWN_GRACE_S`
    to end with its last event (uvicorn itself waits 5 s, see `rag serve`)."""
    return EventSourceResponse(
        content,
        ping=service.settings.ping_interval_s,
        headers=NO_BUFFERING,
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_S,
    )
