"""/v1/ws: the same events as messages, several questions per connection, cancel."""

from __future__ import annotations

import json
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.fakes import GatedLLM
from tests.server.conftest import Serve


def until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    messages = []
    while True:
        message = json.loads(ws.recv(timeout=10))
        messages.append(message)
        if message["type"] in {"done", "error"}:
            return messages


def test_questions_one_after_another_on_one_connection(serve: Serve) -> None:
    server = serve()
    with connect(f"{server.ws_url}/v1/ws") as ws:
        for question in ["Who won Super Bowl 50?", "What is oxygen?"]:
            ws.send(json.dumps({"question": question}))
            messages = until_end(ws)
            assert messages[0]["type"] == "sources" and messages[0]["sources"]
            assert {m["type"] for m in messages[1:-1]} == {"token"}
            assert messages[-1]["type"] == "done" and not messages[-1]["cancelled"]
        ws.send(json.dumps({"question": ""}))
        assert "question" in until_end(ws)[0]["message"]
        ws.send("not json")
        named = ws.response.headers["X-Request-ID"] if ws.response else None
        expected = {"type": "error", "message": "a message is not JSON", "request_id": named}
        assert until_end(ws)[0] == expected  # the connection's id, as its handshake said


def test_cancel_stops_the_answer_and_the_connection_stays_usable(serve: Serve) -> None:
    llm = GatedLLM()  # one token, then blocked until the gate opens or the answer is cancelled
    server = serve(llm=llm)
    with connect(f"{server.ws_url}/v1/ws") as ws:
        ws.send(json.dumps({"question": "Who won Super Bowl 50?"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "sources"
        assert json.loads(ws.recv(timeout=10)) == {"type": "token", "text": "Denver "}
        ws.send(json.dumps({"type": "cancel"}))
        rest = until_end(ws)
        assert llm.ended.wait(5) and not llm.gate.is_set()  # the cancel ended the generation
        assert [m["type"] for m in rest] == ["done"] and rest[-1]["cancelled"] is True
        llm.gate.set()
        ws.send(json.dumps({"question": "What is oxygen?"}))
        assert until_end(ws)[-1]["cancelled"] is False


def test_a_binary_frame_gets_an_error_and_leaks_nothing(serve: Serve) -> None:
    """The JSON body sent as bytes: an error message saying to send text, the connection still
    answers, and no task is left behind once the client leaves."""
    import time

    import httpx

    server = serve()

    def tasks() -> int:
        return int(httpx.get(f"{server.url}/readyz", timeout=10).json()["tasks"])

    before = tasks()
    with connect(f"{server.ws_url}/v1/ws") as ws:
        ws.send(json.dumps({"question": "Who won Super Bowl 50?"}).encode())
        error = until_end(ws)
        assert [(e["type"], e["message"]) for e in error] == [
            ("error", "send each message as a text frame of JSON")
        ]
        ws.send(json.dumps({"question": "Who won Super Bowl 50?"}))
        assert until_end(ws)[-1]["type"] == "done"
    deadline = time.monotonic() + 10
    while tasks() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tasks() == before
