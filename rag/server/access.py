"""What is recorded of each request: its id (`X-Request-ID`: the client's when it sent a sane
one, else a new one; on the response, in the access log line and in the answer's `done` or
`error` event), one JSON access log line, and the request metrics by route template. A pure
ASGI middleware, outermost, so it sees what every other layer answered (a 401, a 413, a 429)
and the whole of a streamed response."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.metrics import Metrics

access_log = logging.getLogger("rag.access")
HEADER = "X-Request-ID"
# what a proxy or client may send as an id: UUIDs, hex, base64, `trace-id:span`; at most 128
SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+/=@-]{0,127}")
UNMATCHED = "(unmatched)"  # a path no route serves: one label value for all of them


def request_id(scope: Scope) -> str:
    """The id `Access` gave the request (a new one for a scope it did not see)."""
    state = scope.setdefault("state", {})
    return str(state.setdefault("request_id", uuid.uuid4().hex))


def chosen_id(scope: Scope) -> str:
    """The client's `X-Request-ID` if it is sane, else a new random one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if SANE_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def route_of(scope: Scope, routes: list[BaseRoute]) -> str:
    """The template of the route that served the request (`/v1/conversations/{conversation_id}`),
    never the path itself: label values stay a fixed set."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    partial = None
    for candidate in routes:  # refused before routing (401, 413, 429): match it here
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", UNMATCHED))
        if match == Match.PARTIAL and partial is None:  # the path, another method (405)
            partial = str(getattr(candidate, "path", UNMATCHED))
    return partial or UNMATCHED


class Access:
    def __init__(self, app: ASGIApp, routes: list[BaseRoute], metrics: Metrics) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = chosen_id(scope)
        scope.setdefault("state", {})["request_id"] = given
        header = (HEADER.lower().encode(), given.encode("latin-1"))
        status: dict[str, Any] = {"status": None}

        async def recording_send(message: Message) -> None:
            kind = message["type"]
            if kind in {"http.response.start", "websocket.accept"}:
                message = {**message, "headers": [*message.get("headers", ()), header]}
                status["status"] = message.get("status", 101)
            elif kind == "websocket.close" and status["status"] is None:
                status["status"] = 403  # refused before the handshake completed
            elif kind == "websocket.http.response.start":
                status["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            seconds = time.perf_counter() - started
            method = scope.get("method", "WEBSOCKET")
            self.metrics.request(route_of(scope, self.routes), method, status["status"], seconds)
            record: dict[str, Any] = {
                "method": scope.get("method", "WS"),
                "path": scope["path"],
                "status": status["status"],
                "duration_ms": round(1000 * seconds, 2),
                "request_id": given,
            }
            answer = scope.get("state", {}).get("answer")
            if answer:
                record.update(answer)
            access_log.info(json.dumps(record))
