"""`POST /v1/ask`: one question, answered as Server-Sent Events (default), NDJSON lines
(`Accept: application/x-ndjson`, for `curl -N` and scripts) or one JSON object (`stream: false`),
in a conversation (see `conversations.py`: `conversation_id` or `history`, `X-Conversation-Id`).

Everything that can fail on the request itself (validation, a full queue, no index) fails
before the first byte, with a status code; after it, only an `error` event can say so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sse_starlette import ServerSentEvent

from rag.answer import Event, collect
from rag.server.access import request_id
from rag.server.conversations import HEADER, ask_in_conversation
from rag.server.events import NO_BUFFERING, dumps, message, sse_response
from rag.server.schemas import AskRequest
from rag.server.service import ServiceDep

router = APIRouter(tags=["answers"])
NDJSON = "application/x-ndjson"


async def sse_stream(events: AsyncIterator[Event]) -> AsyncIterator[ServerSentEvent]:
    async for event in events:
        yield ServerSentEvent(data=dumps(event.to_json()), event=event.kind)


async def ndjson_stream(events: AsyncIterator[Event]) -> AsyncIterator[str]:
    async for event in events:
        yield dumps(message(event)) + "\n"


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
    timings: dict[str, Any] = request.scope.setdefault("state", {}).setdefault("answer", {})
    shutdown = anyio.Event()  # set by sse-starlette when the server begins to stop
    conversation_id, events = await ask_in_conversation(
        service,
        body,
        timings=timings,
        shutdown=shutdown,
        raise_errors=not body.stream,
        request_id=request_id(request.scope),
    )
    named = {HEADER: conversation_id}
    if not body.stream:  # a failure was raised: the app answers it with its own status
        return JSONResponse(collect([event async for event in events]), headers=named)
    if NDJSON in request.headers.get("accept", ""):
        headers = {**NO_BUFFERING, **named}
        return StreamingResponse(ndjson_stream(events), media_type=NDJSON, headers=headers)
    return sse_response(sse_stream(events), service, shutdown, named)
