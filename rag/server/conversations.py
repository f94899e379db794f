"""Conversations on the server: a question of `/v1/ask` or the WebSocket continues one
(`conversation_id`: its turns are the history), brings its own `history`, or starts a new one;
either way the answer names it (`X-Conversation-Id`, `conversation_id` in `done`) and its turn is
recorded as it ended: `done`, `cancelled` (the client left or stopped it; the answer as far as
it got) or `failed`. `GET /v1/conversations` lists them, newest first; one is read or deleted by
its id.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from rag.answer import Event
from rag.chat import TurnRecorder
from rag.conversation import ConversationStore, Message, title_of
from rag.errors import ConversationNotFound
from rag.server.events import answer_stream
from rag.server.schemas import AskRequest
from rag.server.service import Service, ServiceDep

router = APIRouter(tags=["conversations"])
HEADER = "X-Conversation-Id"
MAX_OFFSET = 1_000_000  # past any store's limit; a larger one overflows the databases' integers


async def ask_in_conversation(
    service: Service, body: AskRequest, **options: Any
) -> tuple[str, AsyncGenerator[Event, None]]:
    """Admit `body`'s question with its conversation's history and name the conversation (a new
    one is created once the question is admitted); the events record the turn as they end.
    `options` go to `answer_stream`. `ConversationNotFound` for an unknown id."""
    history: list[Message] = []
    if body.conversation_id is not None:
        found = await run_in_threadpool(service.conversations.get, body.conversation_id)
        if found is None:
            raise ConversationNotFound(
                f"no conversation {body.conversation_id!r}: it was never started here, was "
                "deleted, or was dropped by the limits; leave conversation_id out to start one"
            )
        history = found.messages()
    elif body.history is not None:
        history = [Message(m.role, m.content) for m in body.history]
    ticket, prepared = await service.admit(
        body.question, body.top_k, body.retrieval, history, body.where()
    )
    conversation_id = body.conversation_id
    if conversation_id is None:
        try:
            conversation_id = await run_in_threadpool(
                service.conversations.create, title_of(body.question)
            )
        except BaseException:
            ticket.release()
            raise
    events = answer_stream(service, ticket, prepared, **options)
    return conversation_id, recorded(events, service.conversations, conversation_id, body.question)


async def recorded(
    events: AsyncGenerator[Event, None],
    store: ConversationStore,
    conversation_id: str,
    question: str,
) -> AsyncGenerator[Event, None]:
    """`events` with the conversation named in `done`; when they end, however they end, the
    turn is appended to the conversation (synchronously: a client gone cancels every await)."""
    recorder = TurnRecorder(conversation_id, question)
    try:
        async for event in events:
            yield recorder.see(event)
    except Exception as err:  # a whole answer in one response: raised for its status
        recorder.failed(str(err))
        raise
    finally:
        recorder.save(store)
        await events.aclose()


@router.get("/v1/conversations", summary="Conversations, most recently used first")
async def list_conversations(
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    page, total = await run_in_threadpool(service.conversations.page, limit, offset)
    return {
        "conversations": [c.to_json(with_turns=False) for c in page],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/v1/conversations/{conversation_id}", summary="One conversation with its turns")
async def get_conversation(conversation_id: str, service: ServiceDep) -> dict[str, Any]:
    found = await run_in_threadpool(service.conversations.get, conversation_id)
    if found is None:
        raise ConversationNotFound(f"no conversation {conversation_id!r}")
    return found.to_json()


@router.delete("/v1/conversations/{conversation_id}", summary="Delete a conversation")
async def delete_conversation(conversation_id: str, service: ServiceDep) -> dict[str, Any]:
    if not await run_in_threadpool(service.conversations.delete, conversation_id):
        raise ConversationNotFound(f"no conversation {conversation_id!r}")
    return {"deleted": conversation_id}
