"""What guards the routes: the optional API key and a cap on request bodies (what is recorded of
each request is `access.py`'s). Both middlewares are pure ASGI (a `BaseHTTPMiddleware` would
buffer streamed bodies and hide client disconnects from the routes)."""

from __future__ import annotations

import hmac
import json
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/"})  # "/": the static page, no data


def key_matches(given: str, expected: str) -> bool:
    """Constant-time comparison, so the time taken says nothing about the key."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class ApiKeyGuard:
    """With `RAG_API_KEY` set, every request but the health checks (and CORS preflights) needs
    `Authorization: Bearer <key>`: routes, OpenAPI docs and the WebSocket, where browsers, which
    cannot set its headers, may pass `?api_key=` instead. A refusal is a 401 in OpenAI's error
    shape (a refused WebSocket handshake is a 403)."""

    def __init__(self, app: ASGIApp, key: str, public: frozenset[str] = PUBLIC_PATHS) -> None:
        self.app = app
        self.key = key
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"} or self.allowed(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "wrong API key"})
            return
        body = json.dumps(
            {
                "error": {
                    "message": "missing or wrong API key: send the header "
                    "Authorization: Bearer <key>",
                    "type": "authentication_error",
                    "code": "invalid_api_key",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def allowed(self, scope: Scope) -> bool:
        if scope["path"] in self.public or scope.get("method") == "OPTIONS":
            return True
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and key_matches(given.strip(), self.key):
            return True
        if scope["type"] == "websocket":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            return key_matches(query.get("api_key", [""])[0], self.key)
        return False


class BodyLimit:
    """413 for a request body over the limit: at once when Content-Length says so, else as soon
    as the streamed body passes it (before anything parses it)."""

    def __init__(self, app: ASGIApp, limit_bytes: int, upload_limit_bytes: int) -> None:
        self.app = app
        self.limit_bytes = limit_bytes
        self.upload_limit_bytes = upload_limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        uploading = scope["path"].startswith("/v1/documents")
        # multipart framing adds a little to the files themselves
        limit = self.upload_limit_bytes * 4 + 65536 if uploading else self.limit_bytes
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        received = 0
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:  # the app turned the cut-off body into its own error: say what it was
                if not started and message["type"] == "http.response.start":
                    started = True
                    await _refuse(send, limit)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _refuse(send, limit)
        except Exception:
            if not refused:
                raise
            if not started:
                await _refuse(send, limit)


class _TooLarge(Exception):
    pass


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": {
                "message": f"the request body is larger than the limit of {limit} bytes",
                "type": "invalid_request_error",
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
