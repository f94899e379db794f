"""`POST /v1/ask`: one question, answered as Server-Sent Events (default), NDJSON lines
(`Accept: application/x-ndjson`, for `curl -N` and scripts) or one JSON object (`stream: false`),
in a conversation (see `conversations.py`: `conversation_id` or `history`, `X-Conversation-Id`).
A streamed answer is kept (`answer_log.py`, `X-Answer-Id`): its SSE events carry ids a client
replays from after a dropped connection (`answers.py`); with `resumable` it goes on meanwhile.

Everything that can fail on the request itself (validation, a full queue, no index) fails
before the first byte, with a status code; after it, only an `error` event can say so.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from rag.answer import collect
from rag.server.access import request_id
from rag.server.answer_log import KeptAnswer, new_answer_id
from rag.server.answers import ANSWER_HEADER
from rag.server.conversations import HEADER, ask_in_conversation
from rag.server.events import NO_BUFFERING, dumps, message, numbered_sse, sse_response
from rag.server.schemas import AskRequest
from rag.server.service import ServiceDep

router = APIRouter(tags=["answers"])
NDJSON = "application/x-ndjson"


async def ndjson_stream(kept: KeptAnswer) -> AsyncIterator[str]:
    async with contextlib.aclosing(kept.follow()) as events:
        async for _, event in events:
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
    cancel = threading.Event()
    answer_id = new_answer_id()
    conversation_id, events = await ask_in_conversation(
        service,
        body,
        cancel=cancel,
        timings=timings,
        shutdown=shutdown,
        raise_errors=not body.stream,
        request_id=request_id(request.scope),
        answer_id=answer_id if body.stream else None,
    )
    named = {HEADER: conversation_id}
    if not body.stream:  # a failure was raised: the app answers it with its own status
        return JSONResponse(collect([event async for event in events]), headers=named)
    grace_s = service.settings.resume_grace_s if body.resumable else 0.0
    kept = service.answers.start(answer_id, events, cancel, grace_s)
    named[ANSWER_HEADER] = kept.id
    if NDJSON in request.headers.get("accept", ""):
        headers = {**NO_BUFFERING, **named}
        return StreamingResponse(ndjson_stream(kept), media_type=NDJSON, headers=headers)
    return sse_response(numbered_sse(kept), service, shutdown, named)
