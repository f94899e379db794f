"""Conversations over HTTP and the WebSocket, against a live uvicorn: a question starts one and
names it, a follow-up continues it and is searched with it, each turn is kept as it ended (a
client that leaves leaves a `cancelled` turn), and they are listed, read and deleted."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from rag.conversation import Message
from rag.llm.mock import MockLLM
from rag.prompt import Prompt
from tests.fakes import EndlessLLM
from tests.server.conftest import Serve
from tests.server.live import ask, sse_events

FIRST = "Where was Super Bowl 50 played?"
FOLLOW_UP = "Who was named Most Valuable Player there?"


class Recording(MockLLM):
    """The mock, keeping each prompt it was given."""

    def __init__(self) -> None:
        super().__init__(delay_s=0)
        self.prompts: list[Prompt] = []

    def stream(self, prompt: Prompt, cancel: Any = None) -> Any:
        self.prompts.append(prompt)
        return super().stream(prompt, cancel)


def conversation(client: httpx.Client, cid: str) -> dict[str, Any]:
    response = client.get(f"/v1/conversations/{cid}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def test_a_question_starts_a_conversation_and_a_follow_up_continues_it(serve: Serve) -> None:
    llm = Recording()
    server = serve(llm=llm)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", "/v1/ask", json={"question": FIRST}) as response:
            cid = response.headers["x-conversation-id"]
            events = list(sse_events(response))
        assert events[-1].name == "done" and events[-1].data["conversation_id"] == cid
        assert events[-1].data["usage"]["history_turns"] == 0
        follow = ask(client, FOLLOW_UP, conversation_id=cid)
        assert follow[-1].data["conversation_id"] == cid
        assert follow[-1].data["usage"]["history_turns"] == 1
        assert follow[0].data[0]["source"].endswith("football.md")
        first_answer = "".join(e.data["text"] for e in events if e.name == "token").strip()
        assert llm.prompts[-1].history == (
            Message("user", FIRST),
            Message("assistant", first_answer),
        )
        assert f"User: {FIRST}" in llm.prompts[-1].text
        kept = conversation(client, cid)
    assert [t["question"] for t in kept["turns"]] == [FIRST, FOLLOW_UP]
    assert [t["status"] for t in kept["turns"]] == ["done", "done"]
    assert kept["turns"][0]["answer"] == first_answer
    assert kept["turns"][1]["sources"][0]["source"].endswith("football.md")
    assert kept["title"] == FIRST and kept["n_turns"] == 2


def test_a_client_history_is_used_and_stream_false_names_the_conversation(serve: Serve) -> None:
    llm = Recording()
    server = serve(llm=llm)
    history = [{"role": "user", "content": FIRST}, {"role": "assistant", "content": "Levi's"}]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post(
            "/v1/ask", json={"question": FOLLOW_UP, "history": history, "stream": False}
        )
        assert response.status_code == 200, response.text
        cid = response.headers["x-conversation-id"]
        assert response.json()["conversation_id"] == cid
        assert response.json()["usage"]["history_turns"] == 1
        assert llm.prompts[-1].history == (Message("user", FIRST), Message("assistant", "Levi's"))
        assert [t["question"] for t in conversation(client, cid)["turns"]] == [FOLLOW_UP]


def test_a_client_that_leaves_leaves_a_cancelled_turn(serve: Serve) -> None:
    server = serve(llm=EndlessLLM(delay_s=0.02))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/v1/ask", json={"question": FIRST}) as response:
            cid = response.headers["x-conversation-id"]
            events = sse_events(response)
            for _ in range(4):
                next(events)
        deadline = time.monotonic() + 10
        while not (turns := conversation(client, cid)["turns"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [t["status"] for t in turns] == ["cancelled"]
    assert turns[0]["answer"]  # what was produced before the client left


def test_a_failed_answer_is_kept_as_failed(serve: Serve) -> None:
    server = serve(llm=MockLLM(fail_after=2))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/v1/ask", json={"question": FIRST}) as response:
            cid = response.headers["x-conversation-id"]
            events = list(sse_events(response))
        assert events[-1].name == "error"
        (turn,) = conversation(client, cid)["turns"]
    assert turn["status"] == "failed" and turn["error"] == events[-1].data["message"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"question": "q", "conversation_id": "0" * 32}, 404, "no conversation"),
        ({"question": "q", "conversation_id": "x", "history": []}, 422, "not both"),
        ({"question": "q", "history": [{"role": "tool", "content": "x"}]}, 422, "role"),
        ({"question": "q", "history": [{"role": "user", "content": ""}]}, 422, "content"),
        ({"question": "q", "history": [{"role": "user", "content": "x"}] * 201}, 422, "200"),
        ({"question": "q", "history": [{"role": "user", "content": "x" * 150_000}]}, 422, "100000"),
    ],
)
def test_bad_conversations_get_a_4xx_with_a_message(
    serve: Serve, body: dict[str, Any], status: int, needle: str
) -> None:
    server = serve()
    response = httpx.post(f"{server.url}/v1/ask", json=body, timeout=10)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]


def test_a_chat_of_too_many_messages_is_a_422(serve: Serve) -> None:
    server = serve()
    messages = [{"role": "user", "content": "x"}] * 1001
    response = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": messages})
    assert response.status_code == 422 and "1000" in response.json()["error"]["message"]


def test_conversations_are_listed_newest_first_read_and_deleted(serve: Serve) -> None:
    server = serve(llm=MockLLM(delay_s=0))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        ids = []
        for question in ["first question", "second question", "third question"]:
            response = client.post("/v1/ask", json={"question": question, "stream": False})
            ids.append(response.headers["x-conversation-id"])
        listed = client.get("/v1/conversations", params={"limit": 2}).json()
        assert listed["total"] == 3
        assert [c["id"] for c in listed["conversations"]] == [ids[2], ids[1]]
        assert all(c["n_turns"] == 1 and "turns" not in c for c in listed["conversations"])
        rest = client.get("/v1/conversations", params={"limit": 2, "offset": 2}).json()
        assert [c["id"] for c in rest["conversations"]] == [ids[0]]
        assert client.delete(f"/v1/conversations/{ids[1]}").json() == {"deleted": ids[1]}
        for gone in (
            client.get(f"/v1/conversations/{ids[1]}"),
            client.delete(f"/v1/conversations/{ids[1]}"),
        ):
            assert gone.status_code == 404 and "no conversation" in gone.json()["error"]["message"]
        assert client.get("/v1/conversations", params={"limit": 0}).status_code == 422


def test_the_websocket_carries_the_conversation(serve: Serve) -> None:
    server = serve(llm=MockLLM(delay_s=0))
    with connect(f"{server.ws_url}/v1/ws") as socket:
        socket.send(json.dumps({"question": FIRST}))
        first = receive_answer(socket)
        cid = first[-1]["conversation_id"]
        socket.send(json.dumps({"question": FOLLOW_UP, "conversation_id": cid}))
        follow = receive_answer(socket)
        socket.send(json.dumps({"question": "q", "conversation_id": "0" * 32}))
        unknown = json.loads(socket.recv(timeout=10))
    assert follow[-1]["conversation_id"] == cid and follow[-1]["usage"]["history_turns"] == 1
    assert unknown["type"] == "error" and "no conversation" in unknown["message"]
    turns = httpx.get(f"{server.url}/v1/conversations/{cid}", timeout=10).json()["turns"]
    assert [t["question"] for t in turns] == [FIRST, FOLLOW_UP]


def receive_answer(socket: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while not messages or messages[-1]["type"] not in ("done", "error"):
        messages.append(json.loads(socket.recv(timeout=10)))
    return messages


def test_chat_completions_read_the_whole_conversation(serve: Serve) -> None:
    llm = Recording()
    server = serve(llm=llm)
    messages = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": "Levi's Stadium"},
        {"role": "user", "content": FOLLOW_UP},
    ]
    response = httpx.post(
        f"{server.url}/v1/chat/completions", json={"messages": messages}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["sources"][0]["source"].endswith("football.md")
    assert llm.prompts[-1].question == FOLLOW_UP
    assert llm.prompts[-1].history == (
        Message("system", "Answer in French."),
        Message("user", FIRST),
        Message("assistant", "Levi's Stadium"),
    )
