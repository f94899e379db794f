"""A real uvicorn on a free loopback port, in a thread: streaming is only proven over a socket
(in-process ASGI clients collect the whole body first). Plus a timestamping SSE reader, and a
TCP relay that cuts connections (after N bytes, or all at once) as a failing network does. (`rag
serve` in its own process is `bench.live.ServerProcess`, shared with the benchmarks.)"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI


class LiveServer:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            ws="websockets-sansio",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.errors = ErrorLog()  # what the app and uvicorn logged at ERROR, e.g. a traceback

    def __enter__(self) -> LiveServer:
        for name in LOGGERS:
            logging.getLogger(name).addHandler(self.errors)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(self.errors)


LOGGERS = ("uvicorn.error", "rag")  # uvicorn's own does not propagate to the root logger


class ErrorLog(logging.Handler):
    """Keeps the ERROR records (an unhandled exception in the app is one, with its traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [self.format(record) for record in self.records]


@dataclass
class Received:
    name: str
    data: Any
    at: float  # perf_counter() when the event's last line arrived


def sse_events(response: httpx.Response) -> Iterator[Received]:
    """Events of an SSE response as they arrive (comments skipped)."""
    name, data = "message", list[str]()
    for line in response.iter_lines():
        if line == "":
            if data:
                text = "\n".join(data)
                yield Received(
                    name, text if text == "[DONE]" else json.loads(text), time.perf_counter()
                )
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def ask_ndjson(client: httpx.Client, question: str) -> list[dict[str, Any]]:
    """The messages of one /v1/ask answered as NDJSON (`Accept: application/x-ndjson`)."""
    headers = {"Accept": "application/x-ndjson"}
    with client.stream("POST", "/v1/ask", json={"question": question}, headers=headers) as r:
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r.iter_lines() if line]


def ask(client: httpx.Client, question: str, **body: Any) -> list[Received]:
    with client.stream("POST", "/v1/ask", json={"question": question, **body}) as response:
        assert response.status_code == 200, response.read()
        return list(sse_events(response))


class CuttingRelay:
    """A TCP relay to `upstream` that forwards each response's first `cut` bytes, then closes
    both sides (None: everything); `received` keeps the bytes forwarded, per connection."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.cut: int | None = None
        self.cuts: list[int] = []  # for the next connections, one each, before `cut`
        self.received: list[bytes] = []
        self.open: set[socket.socket] = set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.open |= {client, server}
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
            self.received.append(b"")
            cut = self.cuts.pop(0) if self.cuts else self.cut
            response = (server, client, cut, len(self.received) - 1)
            threading.Thread(target=self._pipe, args=response, daemon=True).start()

    def _pipe(
        self,
        source: socket.socket,
        sink: socket.socket,
        cut: int | None = None,
        slot: int | None = None,
    ) -> None:
        sent = bytearray()
        try:
            while cut is None or len(sent) < cut:
                data = source.recv(65536)
                if not data:
                    break
                data = data if cut is None else data[: cut - len(sent)]
                sink.sendall(data)
                sent += data
                if slot is not None:
                    self.received[slot] = bytes(sent)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
                self.open.discard(end)

    def drop(self) -> None:
        """Cut every connection open now, as a network that goes away does."""
        for end in list(self.open):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        self.drop()
