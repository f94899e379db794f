"""`/metrics` against live servers: the counts equal what happened (answers, refusals,
disconnects) and agree with the access log; label values stay a fixed set whatever clients send;
`X-Request-ID` follows an answer from the client to the log; several workers report together."""

from __future__ import annotations

import json
import logging
import random
import re
import string
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.live import ServerProcess
from rag.metrics import CONTENT_TYPE, METHODS, MULTIPROC_ENV
from rag.server.access import UNMATCHED
from rag.settings import Settings
from tests.fakes import EndlessLLM, GatedLLM
from tests.metrics import samples, value
from tests.server.conftest import Serve, process_env
from tests.server.live import sse_events

ASK = "/v1/ask"


def scrape(client: httpx.Client, **headers: str) -> bytes:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE  # the library's text format
    return response.content


def wait_for(client: httpx.Client, name: str, expected: float, **labels: str) -> bytes:
    """The exposition once `name{labels}` reached `expected` (the server notices a client that
    left a moment after it left), or the last one after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        exposition = scrape(client)
        if value(exposition, name, **labels) >= expected or time.monotonic() > deadline:
            return exposition
        time.sleep(0.02)


def access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, Any]]:
    """The access log lines once there are `count` (a line is written as its response ends,
    a moment after the client has read it) or after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "rag.access"]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)


def test_counts_equal_answers_refusals_and_disconnects_and_agree_with_the_log(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    answers, refusals, disconnects = 4, 3, 2
    llm = EndlessLLM(delay_s=0.01, limit=3)
    server = serve(llm=llm, max_generations=1, max_queue=0)
    caplog.set_level(logging.INFO, logger="rag.access")  # to the test's end: lines come late
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for number in range(answers):
            with client.stream("POST", ASK, json={"question": f"Who won {number}?"}) as r:
                assert [e.name for e in sse_events(r)][-1] == "done"
        llm.limit = 10_000  # from now on an answer goes on until its client leaves
        for number in range(disconnects):
            with (
                httpx.Client(base_url=server.url, timeout=30) as leaving,
                leaving.stream("POST", ASK, json={"question": "Who won?"}) as r,
            ):
                events = sse_events(r)  # kept: a closed reader closes the connection
                while next(events).name != "token":
                    pass
                if number == 0:  # the only slot is taken and nothing may queue: refused
                    for _ in range(refusals):
                        assert client.post(ASK, json={"question": "Who?"}).status_code == 429
            outcome = {"outcome": "disconnected"}
            wait_for(client, "rag_answers_total", number + 1, **outcome)
        exposition = wait_for(client, "rag_generations_running", 0)
    got = samples(exposition)
    assert got["rag_answers_total", (("outcome", "done"),)] == answers
    assert got["rag_answers_total", (("outcome", "disconnected"),)] == disconnects
    assert got["rag_refusals_total", ()] == refusals
    assert got["rag_generations_running", ()] == got["rag_generations_waiting", ()] == 0
    assert got["rag_time_to_first_token_seconds_count", ()] == answers
    assert got["rag_answer_duration_seconds_count", ()] == answers
    assert got["rag_answer_tokens_total", ()] == answers * 3
    assert got["rag_retrieval_seconds_count", ()] == answers + disconnects
    assert got["rag_inter_token_gap_seconds_count", ()] >= answers * 2  # + the disconnected
    requests = "rag_http_requests_total"
    ok = (("method", "POST"), ("route", ASK), ("status", "200"))
    busy = (("method", "POST"), ("route", ASK), ("status", "429"))
    assert got[requests, ok] == answers + disconnects
    assert got[requests, busy] == refusals
    scrapes = int(
        value(exposition, "rag_http_requests_total", route="/metrics", method="GET", status="200")
    )
    lines = access_lines(caplog, answers + disconnects + refusals + scrapes + 1)
    asked = [line for line in lines if line["path"] == ASK]
    assert sum(line["status"] == 200 for line in asked) == got[requests, ok]
    assert sum(line["status"] == 429 for line in asked) == got[requests, busy]
    finished = [line["timings"] for line in asked if "timings" in line]
    assert len(finished) == answers
    logged_s = sum(timings["ttft_ms"] for timings in finished) / 1000
    histogram_s = got["rag_time_to_first_token_seconds_sum", ()]
    assert logged_s == pytest.approx(histogram_s, abs=answers * 0.00001)


def test_label_values_stay_a_fixed_set_whatever_clients_send(serve: Serve) -> None:
    server = serve(llm=EndlessLLM(delay_s=0, limit=1))
    rng = random.Random(7)
    words = ["".join(rng.choices(string.ascii_lowercase, k=12)) for _ in range(1000)]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for word in words:
            answer = client.post(ASK, json={"question": f"What is {word}?", "stream": False})
            assert answer.status_code == 200
            assert client.get(f"/{word}/{word[::-1]}").status_code == 404
        for method in ("BREW", "PROPFIND", "PATCH"):
            assert client.request(method, "/v1/ask").status_code == 405
        conversation = client.post(ASK, json={"question": "Who won?", "stream": False})
        conversation_id = conversation.json()["conversation_id"]
        client.get(f"/v1/conversations/{conversation_id}")
        exposition = scrape(client).decode()
    series = [labels for name, labels in samples(exposition) if name == "rag_http_requests_total"]
    routes = {"/v1/ask", "/v1/conversations/{conversation_id}", UNMATCHED}
    assert {dict(labels)["route"] for labels in series} == routes
    assert {dict(labels)["method"] for labels in series} <= METHODS | {"other"}
    assert len(series) <= 10, series
    assert not [word for word in words if word in exposition]
    assert conversation_id not in exposition
    answered = samples(exposition)["rag_answers_total", (("outcome", "done"),)]
    assert answered == len(words) + 1


def test_a_request_id_follows_the_answer_from_the_client_to_the_log(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(llm=EndlessLLM(delay_s=0, limit=2))
    caplog.set_level(logging.INFO, logger="rag.access")  # to the test's end: lines come late
    with httpx.Client(base_url=server.url, timeout=30) as client:
        mine = "req-2026.11/abc+def=="
        with client.stream(
            "POST", ASK, json={"question": "Who won?"}, headers={"X-Request-ID": mine}
        ) as response:
            assert response.headers["x-request-id"] == mine
            done = [e for e in sse_events(response) if e.name == "done"][-1]
        assert done.data["request_id"] == mine
        chat = client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Who won?"}]},
            headers={"X-Request-ID": "chat-1"},
        )
        assert chat.headers["x-request-id"] == "chat-1"
        for insane in (b"a b", b"x" * 129, b"-leading-dash", "ünïcode".encode(), b"a\tb"):
            response = client.get("/healthz", headers=[(b"X-Request-ID", insane)])
            assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), insane
        fresh = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
        assert len(fresh) == 3
        headers = {"X-Request-ID": "bad-1", "Content-Type": "application/json"}
        refused = client.post(ASK, content=b"{not json", headers=headers)
        assert (refused.status_code, refused.headers["x-request-id"]) == (400, "bad-1")
    logged = {line["request_id"]: line for line in access_lines(caplog, 11)}
    assert logged[mine]["path"] == ASK and logged[mine]["status"] == 200
    assert logged["chat-1"]["path"] == "/v1/chat/completions"
    assert logged["bad-1"]["status"] == 400
    assert fresh <= logged.keys()


def test_an_error_event_names_the_request(serve: Serve) -> None:
    from rag.llm.mock import MockLLM

    server = serve(llm=MockLLM(fail_after=1))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream(
            "POST", ASK, json={"question": "Who won?"}, headers={"X-Request-ID": "broken-7"}
        ) as response:
            events = list(sse_events(response))
        assert events[-1].name == "error"
        assert events[-1].data["request_id"] == "broken-7"
        assert value(scrape(client), "rag_answers_total", outcome="failed") == 1
        chunks = client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Who won?"}], "stream": True},
            headers={"X-Request-ID": "broken-8"},
        )
        error = [json.loads(line[5:]) for line in chunks.text.splitlines() if "error" in line]
        assert error[0]["error"]["request_id"] == "broken-8"


def test_metrics_need_the_key_unless_public_and_can_be_off(serve: Serve) -> None:
    key = {"Authorization": "Bearer k3y"}
    guarded = serve(api_key="k3y")
    public = serve(api_key="k3y", metrics_public=True)
    off = serve(metrics=False)
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{guarded.url}/metrics").status_code == 401
        assert client.get(f"{guarded.url}/metrics", headers=key).status_code == 200
        assert client.get(f"{public.url}/metrics").status_code == 200
        assert client.get(f"{public.url}/v1/models").status_code == 401  # only /metrics is
        response = client.get(f"{off.url}/metrics")
        assert response.status_code == 404
        assert "RAG_METRICS=0" in response.json()["error"]["message"]


def test_two_workers_report_together_in_one_scrape(indexed: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_99999999.db").write_bytes(b"left by an earlier run")
    env = process_env(indexed, RAG_MOCK_TOKEN_DELAY_MS="0", **{MULTIPROC_ENV: str(folder)})
    questions = 24
    with ServerProcess(env, "--workers", "2") as server:
        for number in range(questions):  # a new connection each: the kernel spreads them
            with httpx.Client(base_url=server.url, timeout=30) as client:
                answer = client.post(ASK, json={"question": f"Who won {number}?", "stream": False})
                assert answer.status_code == 200
        pids = {path.stem.rsplit("_", 1)[-1] for path in folder.glob("counter_*.db")}
        assert len(pids) == 2, sorted(p.name for p in folder.iterdir())
        assert "99999999" not in pids  # the earlier run's counts were cleared at start
        for _ in range(6):  # whichever worker answers the scrape reports both
            with httpx.Client(base_url=server.url, timeout=30) as client:
                exposition = scrape(client)
            assert value(exposition, "rag_answers_total", outcome="done") == questions
            ok = {"route": ASK, "method": "POST", "status": "200"}
            assert value(exposition, "rag_http_requests_total", **ok) == questions
            assert value(exposition, "rag_generations_running") == 0
            assert value(exposition, "rag_process_resident_memory_bytes") > 2 * 50 * 2**20
            assert value(exposition, "rag_index_chunks") > 0


def test_a_gated_answer_shows_as_running_then_done(serve: Serve) -> None:
    llm = GatedLLM()
    server = serve(llm=llm)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with client.stream("POST", ASK, json={"question": "Who won?"}) as response:
            events = sse_events(response)
            while next(events).name != "token":
                pass
            during = scrape(client)
            llm.gate.set()
            assert [e.name for e in events][-1] == "done"
        after = wait_for(client, "rag_answers_total", 1, outcome="done")
    assert value(during, "rag_generations_running") == 1
    assert value(during, "rag_answers_total", outcome="done") == 0
    assert value(after, "rag_generations_running") == 0


def test_uploads_are_counted_as_ingests_and_the_index_gauges_follow(serve: Serve) -> None:
    server = serve()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        before = scrape(client)
        files = [
            ("files", ("notes.md", b"# Notes\n\nThe halftime show was headlined by Coldplay.\n")),
            ("files", ("broken.txt", b"\xff\xfe\x00\xd8")),  # a lone surrogate after a BOM
        ]
        assert client.post("/v1/documents", files=files).status_code == 201
        after = scrape(client)
    upload = {"source": "upload"}
    assert value(after, "rag_ingests_total", **upload) == 1
    assert value(after, "rag_ingest_files_total", result="added", **upload) == 1
    assert value(after, "rag_ingest_skipped_files_total", reason="encoding", **upload) == 1
    assert value(after, "rag_index_documents") == value(before, "rag_index_documents") + 1
    assert value(after, "rag_index_chunks") > value(before, "rag_index_chunks")
    assert (
        value(after, "rag_index_version_timestamp_seconds")
        > value(before, "rag_index_version_timestamp_seconds")
        > time.time() - 600
    )


def test_a_websocket_connection_is_counted_once_under_its_route(serve: Serve) -> None:
    from websockets.sync.client import connect

    server = serve()
    with connect(f"{server.ws_url}/v1/ws", additional_headers={"X-Request-ID": "ws-1"}) as ws:
        assert ws.response is not None and ws.response.headers["X-Request-ID"] == "ws-1"
        ws.send('{"question": "Who won?"}')
        while json.loads(ws.recv(timeout=10))["type"] not in {"done", "error"}:
            pass
    with httpx.Client(base_url=server.url, timeout=30) as client:
        exposition = wait_for(
            client, "rag_http_requests_total", 1, route="/v1/ws", method="WEBSOCKET", status="101"
        )
    assert value(exposition, "rag_answers_total", outcome="done") == 1
