"""`/v1/answers/{id}`: a kept answer (see `answer_log.py`) replayed and followed after a dropped
connection, or cancelled. `GET .../events` answers SSE like `/v1/ask`: the events after the one
named by `Last-Event-ID` (`<answer id>:<number>`, as each event's `id:` gave it) or `?after=N`,
then the live ones until the last, each exactly once. `DELETE` stops the generation: the answer
ends with `done`, `cancelled: true`, and replays so. With the pgvector store either works on any
worker of any server (`answer_mirror.py`); with the folder store, on the worker that produced
the answer.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from rag.errors import UsageError
from rag.server.events import numbered_sse, sse_response
from rag.server.service import ServiceDep

router = APIRouter(tags=["answers"])
ANSWER_HEADER = "X-Answer-Id"
MAX_EVENTS = 1_000_000  # far past any answer's; a larger number is a client's mistake


def after_of(answer_id: str, last_event_id: str | None, after: int | None) -> int:
    """Where a replay starts: `?after=N`, else the number in `Last-Event-ID`, else 0.

    after_of("ab12", "ab12:7", None) -> 7
    """
    if after is not None:
        return after
    if last_event_id is None or not last_event_id.strip():
        return 0
    named, _, number = last_event_id.strip().rpartition(":")
    if named and named != answer_id:
        raise UsageError(f"Last-Event-ID {last_event_id!r} names another answer than {answer_id}")
    if not number.isdigit() or int(number) > MAX_EVENTS:
        raise UsageError(
            f"Last-Event-ID {last_event_id!r} is not an event id of this answer "
            f"(<answer id>:<number>)"
        )
    return int(number)


@router.get(
    "/v1/answers/{answer_id}/events",
    summary="Replay an answer's events after Last-Event-ID (or ?after=N), then follow it",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}},
        404: {"description": "unknown or expired answer"},
    },
)
async def replay(
    answer_id: str,
    service: ServiceDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_EVENTS)] = None,
    last_event_id: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    kept = await service.answers.find(answer_id)
    start = after_of(kept.id, last_event_id, after)
    shutdown = anyio.Event()
    return sse_response(numbered_sse(kept, start), service, shutdown, {ANSWER_HEADER: kept.id})


@router.delete("/v1/answers/{answer_id}", summary="Cancel an answer being generated")
async def cancel(answer_id: str, service: ServiceDep) -> dict[str, Any]:
    kept = await service.answers.find(answer_id)
    return {"answer_id": kept.id, "cancelled": await kept.stop()}
