"""A client of a running `rag serve`: the answer's events read from `POST /v1/ask` as they
stream (SSE, parsed by httpx-sse). The question is `resumable`: when the connection drops
mid-answer, the client reconnects to `GET /v1/answers/{id}/events` with the last event's id
(with backoff, for about as long as the server keeps the answer going) and goes on where it
was, no event twice. Used by `rag ask --url`; closing the iterator (Ctrl-C) cancels the answer
on the server (`DELETE /v1/answers/{id}`), or at least closes the connection."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

from rag.answer import EVENTS, Done, Error, Event
from rag.errors import RemoteError

CONNECT_TIMEOUT_S = 10.0
RECONNECTS = 8  # 0.25 s doubling to 5 s: about 25 s, inside the server's 30 s grace


@dataclass
class _Progress:
    answer_id: str | None = None
    last_event_id: str | None = None
    ended: bool = False


def ask_events(
    url: str,
    question: str,
    *,
    top_k: int | None = None,
    retrieval: str | None = None,
    api_key: str | None = None,
    conversation_id: str | None = None,
    where: dict[str, Any] | None = None,
) -> Iterator[Event]:
    """`Sources`, `Token`s, `Done` from the server at `url`, read back from its events; a
    refusal, an unreachable server, an `error` event or a connection that does not come back
    raises `RemoteError`. The question continues `conversation_id`, or starts a conversation
    that `Done.conversation_id` names."""
    body: dict[str, Any] = {"question": question, "resumable": True}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    if top_k is not None:
        body["top_k"] = top_k
    if retrieval is not None:
        body["retrieval"] = retrieval
    if where:
        body["filter"] = where
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    base = url.rstrip("/")
    # no read timeout: a queued question may wait, and the server pings during silences
    timeout = httpx.Timeout(CONNECT_TIMEOUT_S, read=None)
    progress = _Progress()
    try:
        with httpx.Client(timeout=timeout) as client:
            try:
                yield from _events(client, "POST", f"{base}/v1/ask", url, progress, body, headers)
            except httpx.ConnectError:
                raise RemoteError(f"cannot reach {url}: is `rag serve` running there?") from None
            yield from _resumed(client, base, url, progress, headers)
            if progress.answer_id is not None and not progress.ended:
                raise RemoteError(
                    f"the connection to {url} dropped mid-answer and did not come back"
                )
    except (httpx.HTTPError, SSEError, ValueError) as err:
        raise RemoteError(f"the connection to {url} failed: {err}") from None
    finally:
        if progress.answer_id is not None and not progress.ended:  # Ctrl-C, or given up
            _cancel(base, progress.answer_id, headers)


def _resumed(
    client: httpx.Client, base: str, url: str, progress: _Progress, headers: dict[str, str]
) -> Iterator[Event]:
    """The rest of a dropped answer, reconnecting with backoff while it has not ended."""
    attempt = 0
    while progress.answer_id is not None and not progress.ended and attempt < RECONNECTS:
        time.sleep(min(5.0, 0.25 * 2**attempt))
        attempt += 1
        last = {"Last-Event-ID": progress.last_event_id} if progress.last_event_id else {}
        replay = f"{base}/v1/answers/{progress.answer_id}/events"
        seen = progress.last_event_id
        try:
            yield from _events(client, "GET", replay, url, progress, None, {**headers, **last})
        except httpx.TransportError:
            continue
        if progress.last_event_id != seen:
            attempt = 0  # it came back and went on: a later drop gets its retries afresh


def _events(
    client: httpx.Client,
    method: str,
    endpoint: str,
    url: str,
    progress: _Progress,
    body: dict[str, Any] | None,
    headers: dict[str, str],
) -> Iterator[Event]:
    """One response's events, noting the answer's id and the last event's; a connection that
    drops mid-stream just ends them (the caller resumes)."""
    with connect_sse(client, method, endpoint, json=body, headers=headers) as source:
        response = source.response
        if response.status_code != 200:
            response.read()
            raise RemoteError(f"{url} answered {response.status_code}: {_message(response)}")
        progress.answer_id = progress.answer_id or response.headers.get("X-Answer-Id")
        with contextlib.suppress(httpx.TransportError):
            for sse in source.iter_sse():
                event = _event(sse.event, sse.data, url)
                progress.last_event_id = sse.id or progress.last_event_id
                if isinstance(event, Error):
                    progress.ended = True
                    raise RemoteError(f"the server failed while answering: {event.message}")
                progress.ended = isinstance(event, Done)
                yield event


def _cancel(base: str, answer_id: str, headers: dict[str, str]) -> None:
    """Best effort: the server stops generating an answer nobody will read."""
    with contextlib.suppress(httpx.HTTPError):
        httpx.delete(f"{base}/v1/answers/{answer_id}", headers=headers, timeout=2.0)


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
