"""OpenAI-compatible `POST /v1/chat/completions` and `GET /v1/models`, so the official `openai`
client, LangChain's `ChatOpenAI` and every other OpenAI-speaking tool can use the service.

The whole `messages` list is the conversation (OpenAI clients send the history; nothing is kept
on the server): retrieval runs on the last user message read with the questions before it, the
prompt holds the recent turns, and a client's system message comes after the service's own
instructions, never instead of them. The sources travel in an extra top-level field
`sources` (the list `/v1/ask` sends): on the response object, and on the first chunk of a
stream. Streamed: a first chunk with the role, one chunk per token, a chunk with
`finish_reason`, the usage chunk when `stream_options.include_usage`, then `data: [DONE]`; a
failure after the start is a chunk `{"error": {...}}`, then `[DONE]` (as vLLM does).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent

from rag.answer import Done, Error, Sources, Token
from rag.errors import UsageError
from rag.server.access import request_id
from rag.server.answer_log import KeptAnswer, new_answer_id
from rag.server.answers import ANSWER_HEADER
from rag.server.events import answer_stream, dumps, sse_response
from rag.server.schemas import ChatRequest
from rag.server.service import ServiceDep

router = APIRouter(tags=["OpenAI-compatible"])
MODEL = "rag"


def usage(done: Done) -> dict[str, int]:
    prompt, completion = done.prompt_tokens, done.completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def finish_reason(done: Done, max_tokens: int) -> str:
    return "length" if done.completion_tokens >= max_tokens else "stop"


def error_object(error: Error) -> dict[str, Any]:
    return {"error": {**error.to_json(), "type": "server_error", "code": None}}


async def chunk_stream(
    kept: KeptAnswer, include_usage: bool, max_tokens: int
) -> AsyncIterator[ServerSentEvent]:
    head = {
        "id": f"chatcmpl-{kept.id}",  # the answer's id (X-Answer-Id), as every chunk's
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
    }

    def chunk(
        number: int, delta: dict[str, Any], reason: str | None = None, **extra: Any
    ) -> ServerSentEvent:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        data = dumps({**head, "choices": [choice], **extra})
        return ServerSentEvent(data=data, id=f"{kept.id}:{number}")

    async with contextlib.aclosing(kept.follow()) as events:
        async for number, event in events:
            match event:
                case Sources():
                    yield chunk(
                        number, {"role": "assistant", "content": ""}, sources=event.to_json()
                    )
                case Token():
                    yield chunk(number, {"content": event.text})
                case Done():
                    yield chunk(number, {}, finish_reason(event, max_tokens))
                    if include_usage:
                        usage_only = {**head, "choices": [], "usage": usage(event)}
                        yield ServerSentEvent(data=dumps(usage_only))
                case Error():
                    failed = dumps(error_object(event))
                    yield ServerSentEvent(data=failed, id=f"{kept.id}:{number}")
    yield ServerSentEvent(data="[DONE]")


@router.post("/v1/chat/completions", summary="OpenAI-compatible chat completion over the index")
async def chat_completions(body: ChatRequest, request: Request, service: ServiceDep) -> Response:
    try:
        question, history = body.question(), body.history()
    except ValueError as err:
        raise UsageError(f"messages: {err}") from None
    ticket, prepared = await service.admit(
        question, body.top_k, body.retrieval, history, body.where()
    )
    timings: dict[str, Any] = request.scope.setdefault("state", {}).setdefault("answer", {})
    shutdown = anyio.Event()
    cancel = threading.Event()
    answer_id = new_answer_id()
    events = answer_stream(
        service,
        ticket,
        prepared,
        cancel=cancel,
        timings=timings,
        shutdown=shutdown,
        raise_errors=not body.stream,
        request_id=request_id(request.scope),
        answer_id=answer_id,
    )
    max_tokens = service.settings.max_tokens
    if body.stream:  # kept like /v1/ask's: each chunk has an id, X-Answer-Id names it
        kept = service.answers.start(answer_id, events, cancel, grace_s=0.0)
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        chunks = chunk_stream(kept, include_usage, max_tokens)
        return sse_response(chunks, service, shutdown, {ANSWER_HEADER: kept.id})
    sources: list[Any] = []
    text: list[str] = []
    done: Done | None = None
    async for event in events:  # a failure was raised: the app answers it with its status
        match event:
            case Sources():
                sources = event.to_json()
            case Token():
                text.append(event.text)
            case Done():
                done = event
    assert done is not None  # a stream without a failure ends with Done
    return JSONResponse(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(text)},
                    "logprobs": None,
                    "finish_reason": finish_reason(done, max_tokens),
                }
            ],
            "usage": usage(done),
            "sources": sources,
            "timings": done.to_json()["timings"],
        }
    )


@router.get("/v1/models", summary="OpenAI-compatible model list: the one RAG pipeline")
async def models(service: ServiceDep) -> dict[str, Any]:
    llm = service.llm.name if service.llm is not None else None
    return {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "rag", "llm": llm}],
    }
