"""`/v1/ws`: the `/v1/ask` events as WebSocket JSON messages, several questions per connection,
one at a time. The client sends `{"question": ...}` (the `/v1/ask` body) and receives
`{"type": "sources"|"token"|"done"|"error", ...}`; `{"type": "cancel"}` stops the answer being
generated (it then ends with `done`, `"cancelled": true`).
With `RAG_API_KEY` set, the key comes in the `Authorization: Bearer` header or, for browsers
(which cannot set WebSocket headers), in the `api_key` query parameter (see `security`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from rag.answer import Error
from rag.errors import RagError
from rag.server.access import request_id
from rag.server.answer_log import new_answer_id
from rag.server.conversations import ask_in_conversation
from rag.server.events import message
from rag.server.schemas import AskRequest
from rag.server.service import Service

router = APIRouter()


def readable(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()
    )


def parse(frame: Mapping[str, Any]) -> dict[str, Any]:
    """One received frame -> a request, a cancel, or an `invalid` item saying what is wrong."""
    if frame["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(frame.get("code", 1000))
    raw = frame.get("text")
    if raw is None:  # a binary frame: browsers and most clients send text unless told not to
        return {"type": "invalid", "reason": "send each message as a text frame of JSON"}
    try:
        item = json.loads(raw)
    except ValueError:
        return {"type": "invalid", "reason": "a message is not JSON"}
    if not isinstance(item, dict):
        return {"type": "invalid", "reason": "a message is not a JSON object"}
    return item


@router.websocket("/v1/ws")
async def ask_socket(websocket: WebSocket) -> None:
    service: Service = websocket.app.state.service
    await websocket.accept()
    inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    running: list[threading.Event] = []  # the cancel flag of the answer being generated

    async def receive() -> None:
        """Questions go to the inbox in order; a cancel (or the client leaving) stops the
        answer being generated at once."""
        try:
            while True:
                item = parse(await websocket.receive())
                if item.get("type") == "cancel":
                    for flag in running:
                        flag.set()
                    continue
                await inbox.put(item)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:  # whatever ended the reading, the answering loop ends too
            for flag in running:
                flag.set()
            inbox.put_nowait(None)

    reader = asyncio.create_task(receive())
    try:
        while (item := await inbox.get()) is not None:
            cancel = threading.Event()
            running[:] = [cancel]
            await answer_one(websocket, service, item, cancel)
            running.clear()
    except WebSocketDisconnect:
        pass
    finally:
        reader.cancel()


async def answer_one(
    websocket: WebSocket, service: Service, item: dict[str, Any], cancel: threading.Event
) -> None:
    named = request_id(websocket.scope)  # the connection's: every error names it
    if item.get("type") == "invalid":
        await websocket.send_json(message(Error(item.get("reason", "bad message"), named)))
        return
    try:
        body = AskRequest.model_validate({k: v for k, v in item.items() if k != "type"})
        answer_id = new_answer_id()
        _, events = await ask_in_conversation(
            service, body, cancel=cancel, request_id=named, answer_id=answer_id
        )
    except ValidationError as err:
        await websocket.send_json(message(Error(readable(err), named)))
        return
    except RagError as err:
        await websocket.send_json(message(Error(str(err), named)))
        return
    # kept like /v1/ask's answers: DELETE /v1/answers/{id} stops it too (the same cancel flag
    # as the `cancel` message), and a client that leaves stops it within a token
    kept = service.answers.start(answer_id, events, cancel, grace_s=0.0)
    async with contextlib.aclosing(kept.follow()) as followed:
        async for _, event in followed:
            await websocket.send_json(message(event))
