"""A client of a running `rag serve`: the answer's events read from `POST /v1/ask` as they
stream (SSE, parsed by httpx-sse). Used by `rag ask --url`; closing the iterator (Ctrl-C) closes
the connection, and the server then cancels the generation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

from rag.answer import EVENTS, Error, Event
from rag.errors import RemoteError

CONNECT_TIMEOUT_S = 10.0


def ask_events(
    url: str,
    question: str,
    *,
    top_k: int | None = None,
    retrieval: str | None = None,
    api_key: str | None = None,
    conversation_id: str | None = None,
) -> Iterator[Event]:
    """`Sources`, `Token`s, `Done` from the server at `url`, read back from its events; a
    refusal, an unreachable server or an `error` event raises `RemoteError`. The question
    continues `conversation_id`, or starts a conversation that `Done.conversation_id` names."""
    body: dict[str, Any] = {"question": question}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    if top_k is not None:
        body["top_k"] = top_k
    if retrieval is not None:
        body["retrieval"] = retrieval
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    endpoint = url.rstrip("/") + "/v1/ask"
    # no read timeout: a queued question may wait, and the server pings during silences
    timeout = httpx.Timeout(CONNECT_TIMEOUT_S, read=None)
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            connect_sse(client, "POST", endpoint, json=body, headers=headers) as source,
        ):
            response = source.response
            if response.status_code != 200:
                response.read()
                raise RemoteError(f"{url} answered {response.status_code}: {_message(response)}")
            for sse in source.iter_sse():
                event = _event(sse.event, sse.data, url)
                if isinstance(event, Error):
                    raise RemoteError(f"the server failed while answering: {event.message}")
                yield event
    except httpx.ConnectError:
        raise RemoteError(f"cannot reach {url}: is `rag serve` running there?") from None
    except (httpx.HTTPError, SSEError, ValueError) as err:
        raise RemoteError(f"the connection to {url} failed: {err}") from None


def _event(name: str, raw: str, url: str) -> Event:
    """One SSE event of /v1/ask read back into its type; anything else means the server at
    `url` speaks another dialect (say, OpenAI chunks ending in `data: [DONE]`)."""
    try:
        return EVENTS[name].from_json(json.loads(raw))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise RemoteError(
            f"{url} is not a rag server (or another version): it sent an event "
            f"{name!r} with {raw[:60]!r} where /v1/ask sends sources, token, done or error"
        ) from None


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase
