"""A misbehaving OpenAI-compatible server on a loopback port, for the openai backend's faults:
too slow to answer, stalling mid-stream, HTML instead of a stream, broken JSON, a 500; or a
well-behaved one ("ok"). It keeps every request body it received."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Behaviour = Literal["ok", "slow", "stall", "html", "bad_json", "error"]

CHUNK = {
    "id": "x",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": "Denver "}, "finish_reason": None}],
}


class FakeUpstream:
    def __init__(self, behaviour: Behaviour, hold_s: float = 30.0) -> None:
        self.behaviour = behaviour
        self.hold_s = hold_s  # how long "slow" and "stall" keep the client waiting
        self.release = threading.Event()  # ends the waits early, when the test is over
        self.received: list[dict[str, Any]] = []  # the JSON body of each request, in order
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeUpstream:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                upstream.received.append(json.loads(body or b"{}"))
                behaviour = upstream.behaviour
                if behaviour == "slow":
                    upstream.release.wait(upstream.hold_s)
                    return
                if behaviour == "error":
                    self.reply(500, "application/json", b'{"error": {"message": "boom"}}')
                    return
                if behaviour == "html":
                    self.reply(200, "text/html", b"<html><body>Welcome to nginx!</body></html>")
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                if behaviour == "bad_json":
                    self.wfile.write(b"data: {this is not json\n\n")
                    return
                self.wfile.write(f"data: {json.dumps(CHUNK)}\n\n".encode())
                self.wfile.flush()
                if behaviour == "ok":
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
                # "stall"
                started = time.monotonic()
                while not upstream.release.wait(0.1) and time.monotonic() - started < 30:
                    pass

            def reply(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
