"""Answers that survive a dropped connection, against a live server: a relay cuts the response
after N bytes (at every event boundary of a short answer, and inside events), the client
reconnects with Last-Event-ID and ends with the uninterrupted answer, no event twice, none
missing; the grace period, explicit cancel, expiry, the cap and the API key."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from rag.llm.mock import MockLLM
from tests.fakes import EndlessLLM
from tests.metrics import value
from tests.server.conftest import Serve
from tests.server.live import CuttingRelay, LiveServer

ASK = "/v1/ask"
QUESTION = {"question": "Who won Super Bowl 50?", "resumable": True}


@dataclass
class Read:
    """What a client got of an answer: the answer id, and each complete event."""

    answer_id: str | None = None
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # id, name, data
    cut: bool = False

    @property
    def last_id(self) -> str | None:
        return self.events[-1][0] if self.events else None

    def numbers(self) -> list[int]:
        return [int(event_id.rsplit(":", 1)[1]) for event_id, _, _ in self.events]

    def text(self) -> str:
        return "".join(data["text"] for _, name, data in self.events if name == "token")


def read_sse(response: httpx.Response, into: Read, lines: Iterator[str] | None = None) -> None:
    """Complete SSE events into `into` (from `lines` when part of the response was read
    already); an event cut before its blank line is dropped, as EventSource drops it."""
    into.answer_id = into.answer_id or response.headers.get("x-answer-id")
    event_id, name, data = "", "message", ""
    try:
        for line in lines or response.iter_lines():
            if line == "":
                if data:
                    into.events.append((event_id, name, json.loads(data)))
                event_id, name, data = "", "message", ""
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
    except httpx.HTTPError:
        into.cut = True


def ask_through(url: str, body: dict[str, Any] = QUESTION) -> Read:
    got = Read()
    try:
        with (
            httpx.Client(base_url=url, timeout=30) as client,
            client.stream("POST", ASK, json=body) as response,
        ):
            read_sse(response, got)
    except httpx.HTTPError:
        got.cut = True
    return got


def resume(url: str, got: Read, **headers: str) -> Read:
    """Reconnect directly and read the rest after the last complete event."""
    rest = Read(answer_id=got.answer_id)
    last = {"Last-Event-ID": got.last_id} if got.last_id else {}
    with (
        httpx.Client(base_url=url, timeout=30) as client,
        client.stream(
            "GET", f"/v1/answers/{got.answer_id}/events", headers={**last, **headers}
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        read_sse(response, rest)
    return rest


def event_ends(raw: bytes) -> list[int]:
    """Offsets just after each SSE event (and after the headers) in a raw HTTP response."""
    ends, start = [], 0
    while (found := raw.find(b"\r\n\r\n", start)) != -1:
        ends.append(found + 4)
        start = found + 4
    return ends


@pytest.fixture
def relayed(serve: Serve) -> Iterator[tuple[LiveServer, CuttingRelay]]:
    server = serve(llm=MockLLM(delay_s=0.005, reply="Denver beat Carolina 24 to 10 [1]."))
    relay = CuttingRelay(server.url)
    yield server, relay
    relay.close()


def test_a_cut_anywhere_resumes_to_the_uninterrupted_answer(
    relayed: tuple[LiveServer, CuttingRelay],
) -> None:
    server, relay = relayed
    whole = ask_through(relay.url)
    assert not whole.cut and whole.events[-1][1] == "done"
    assert whole.numbers() == list(range(1, len(whole.events) + 1))
    assert whole.events[-1][2]["answer_id"] == whole.answer_id
    assert all(event_id.startswith(f"{whole.answer_id}:") for event_id, _, _ in whole.events)
    raw = relay.received[-1]
    ends = event_ends(raw)
    headers_end = ends[0]
    cuts = sorted({*ends[:-1], *(end - 3 for end in ends[1:]), headers_end + 5})
    assert len(cuts) >= 2 * (len(whole.events) - 1)
    for cut in cuts:
        relay.cut = cut
        got = ask_through(relay.url)
        assert got.answer_id, cut  # the header came before the cut
        rest = resume(server.url, got)
        numbers = got.numbers() + rest.numbers()
        assert numbers == list(range(1, len(numbers) + 1)), (cut, numbers)  # no gap, no twice
        assert got.text() + rest.text() == whole.text(), cut
        last = (got.events + rest.events)[-1]
        assert last[1] == "done" and not last[2]["cancelled"], cut


def test_a_resumable_answer_goes_on_while_its_client_is_away(serve: Serve) -> None:
    server = serve(llm=EndlessLLM(delay_s=0.01, limit=60), resume_grace_s=30)
    got = Read()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", ASK, json=QUESTION) as response:
            got.answer_id = response.headers["x-answer-id"]
            lines = iter(response.iter_lines())
            read_sse(response, got, itertools.takewhile(lambda _: got.text().count(" ") < 3, lines))
        time.sleep(0.2)  # gone for 20 tokens' time
        rest = resume(server.url, got)
    numbers = got.numbers() + rest.numbers()
    assert numbers == list(range(1, len(numbers) + 1))
    assert got.text() + rest.text() == "".join(f"t{n} " for n in range(60))
    assert rest.events[-1][1] == "done"


def test_without_a_reconnect_the_answer_stops_after_the_grace_period(serve: Serve) -> None:
    llm = EndlessLLM(delay_s=0.01)
    server = serve(llm=llm, resume_grace_s=0.5)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        left_at = time.monotonic()
        with client.stream("POST", ASK, json=QUESTION) as response:
            answer_id = response.headers["x-answer-id"]
            next(line for line in response.iter_lines() if line == "event: token")
            left_at = time.monotonic()
        deadline = time.monotonic() + 10
        while client.get("/readyz").json()["running"] and time.monotonic() < deadline:
            time.sleep(0.02)
        stopped_after = time.monotonic() - left_at
        assert llm.ended.wait(10)  # stopped for good
        assert 0.45 < stopped_after < 5, stopped_after
        replay = Read()
        with client.stream("GET", f"/v1/answers/{answer_id}/events?after=0") as response:
            read_sse(response, replay)
        metrics = client.get("/metrics").content
    assert replay.events[0][1] == "sources" and replay.events[-1][1] == "error"
    assert "did not come back within 0.5 s" in replay.events[-1][2]["message"]
    assert replay.numbers() == list(range(1, len(replay.events) + 1))
    assert value(metrics, "rag_answers_total", outcome="disconnected") == 1


def test_a_plain_answer_still_stops_within_a_token_of_its_client_leaving(serve: Serve) -> None:
    llm = EndlessLLM(delay_s=0.05)
    server = serve(llm=llm)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", ASK, json={"question": "Who won?"}) as response:
            next(line for line in response.iter_lines() if line == "event: token")
            seen = llm.produced
        deadline = time.monotonic() + 10
        while client.get("/readyz").json()["running"] and time.monotonic() < deadline:
            time.sleep(0.01)
    assert llm.produced <= seen + 1


def test_delete_cancels_and_the_answer_replays_as_cancelled(serve: Serve) -> None:
    server = serve(llm=EndlessLLM(delay_s=0.01))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", ASK, json=QUESTION) as response:
            answer_id = response.headers["x-answer-id"]
            lines = response.iter_lines()
            next(line for line in lines if line == "event: token")
            stopped = client.delete(f"/v1/answers/{answer_id}")
            assert stopped.json() == {"answer_id": answer_id, "cancelled": True}
            live = Read()
            read_sse(response, live, lines)
        again = client.delete(f"/v1/answers/{answer_id}")
        assert again.json() == {"answer_id": answer_id, "cancelled": False}  # already ended
        replay = Read()
        with client.stream("GET", f"/v1/answers/{answer_id}/events") as response:
            read_sse(response, replay)
    assert live.events[-1][1] == "done" and live.events[-1][2]["cancelled"] is True
    assert replay.events[-1][1] == "done" and replay.events[-1][2]["cancelled"] is True
    assert replay.numbers() == list(range(1, len(replay.events) + 1))


def test_replay_from_a_number_and_bad_event_ids(serve: Serve) -> None:
    server = serve(llm=MockLLM(reply="one two three four"))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        whole = Read()
        with client.stream("POST", ASK, json={"question": "Who won?"}) as response:
            read_sse(response, whole)
        url = f"/v1/answers/{whole.answer_id}/events"
        tail = Read()
        with client.stream("GET", f"{url}?after=3") as response:
            read_sse(response, tail)
        assert tail.events == whole.events[3:]
        for bad, phrase in [("someoneelse:2", "another answer"), (f"{whole.answer_id}:x", "not")]:
            refused = client.get(url, headers={"Last-Event-ID": bad})
            assert refused.status_code == 422 and phrase in refused.json()["error"]["message"]
        unknown = client.get("/v1/answers/" + "0" * 32 + "/events")
        assert unknown.status_code == 404
        assert "no answer" in unknown.json()["error"]["message"]
        assert client.delete("/v1/answers/nothing").status_code == 404


def test_ended_answers_expire_and_the_oldest_go_past_the_cap(serve: Serve) -> None:
    server = serve(llm=MockLLM(reply="ok"), resume_ttl_s=0.5, resume_max_answers=2)
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def answer() -> str:
            with client.stream("POST", ASK, json={"question": "Who won?"}) as response:
                read_sse(response, got := Read())
            assert got.answer_id is not None
            return got.answer_id

        first, second, third = answer(), answer(), answer()
        status = {a: client.get(f"/v1/answers/{a}/events").status_code for a in (first, second)}
        assert status == {first: 404, second: 200}  # the cap: 2 kept, the oldest dropped
        assert client.get(f"/v1/answers/{third}/events").status_code == 200
        time.sleep(0.7)
        assert client.get(f"/v1/answers/{third}/events").status_code == 404  # expired


def test_someone_elses_answer_needs_the_key(serve: Serve) -> None:
    key = {"Authorization": "Bearer k"}
    server = serve(llm=MockLLM(reply="ok"), api_key="k")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", ASK, json={"question": "Who won?"}, headers=key) as response:
            read_sse(response, got := Read())
        url = f"/v1/answers/{got.answer_id}"
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            assert client.get(f"{url}/events", headers=headers).status_code == 401
            assert client.delete(url, headers=headers).status_code == 401
        assert client.get(f"{url}/events", headers=key).status_code == 200


def test_chat_chunks_carry_the_answer_id_and_numbers(serve: Serve) -> None:
    server = serve(llm=MockLLM(reply="Denver won"))
    body = {"messages": [{"role": "user", "content": "Who won?"}], "stream": True}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/v1/chat/completions", json=body)
    answer_id = response.headers["x-answer-id"]
    ids = [line[3:].strip() for line in response.text.splitlines() if line.startswith("id:")]
    assert ids == [f"{answer_id}:{n}" for n in range(1, len(ids) + 1)]
    assert f'"id":"chatcmpl-{answer_id}"' in response.text


def test_a_websocket_answer_is_kept_and_cancelled_the_same_way(serve: Serve) -> None:
    from websockets.sync.client import connect

    server = serve(llm=EndlessLLM(delay_s=0.01))
    with connect(f"{server.ws_url}/v1/ws") as ws, httpx.Client(base_url=server.url) as client:
        ws.send(json.dumps({"question": "Who won?"}))
        while json.loads(ws.recv(timeout=10))["type"] != "token":
            pass
        ws.send(json.dumps({"type": "cancel"}))
        while (last := json.loads(ws.recv(timeout=10)))["type"] == "token":
            pass
        assert last["type"] == "done" and last["cancelled"] is True
        replay = Read()
        with client.stream("GET", f"/v1/answers/{last['answer_id']}/events") as response:
            read_sse(response, replay)
        name, data = replay.events[-1][1:]
        assert (name, data["answer_id"], data["cancelled"]) == ("done", last["answer_id"], True)


def test_a_failed_answer_replays_as_it_failed(serve: Serve) -> None:
    server = serve(llm=MockLLM(fail_after=2))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        live = Read()
        with client.stream("POST", ASK, json={"question": "Who won?"}) as response:
            read_sse(response, live)
        replay = Read()
        with client.stream("GET", f"/v1/answers/{live.answer_id}/events") as response:
            read_sse(response, replay)
    assert [name for _, name, _ in live.events] == ["sources", "token", "token", "error"]
    assert replay.events == live.events  # the same events, ids and all
