"""POST /v1/ask against a live uvicorn: streaming, framing, errors, cancellation, the queue."""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.live import ServerProcess
from rag.embeddings import HashingEmbedder
from rag.ingestion import ingest
from rag.llm.mock import MockLLM
from rag.server.app import create_app
from rag.settings import Settings
from tests.conftest import Background, wait_until, write_corpus
from tests.fakes import EndlessLLM, GatedLLM
from tests.server.conftest import Serve, process_env
from tests.server.live import LiveServer, ask, ask_ndjson, sse_events

QUESTION = "Who won Super Bowl 50?"


def test_the_first_token_arrives_while_the_generator_is_blocked_before_the_second(
    serve: Serve,
) -> None:
    llm = GatedLLM()
    server = serve(llm=llm)
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("POST", "/v1/ask", json={"question": QUESTION}) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = sse_events(response)
        sources = next(events)
        first = next(events)
        assert (sources.name, first.name) == ("sources", "token")
        assert first.data == {"text": "Denver "}
        assert not llm.gate.is_set()  # nothing after the first token exists yet
        llm.gate.set()
        rest = list(events)
    assert [e.name for e in rest] == ["token", "token", "done"]
    assert "".join(e.data["text"] for e in [first, *rest[:-1]]) == "Denver won [1]"


def test_ndjson_delivers_the_first_token_before_the_generator_makes_the_second(
    serve: Serve,
) -> None:
    llm = GatedLLM()
    server = serve(llm=llm)
    headers = {"Accept": "application/x-ndjson"}
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("POST", "/v1/ask", json={"question": QUESTION}, headers=headers) as r,
    ):
        lines = (json.loads(line) for line in r.iter_lines() if line)
        sources, first = next(lines), next(lines)
        assert (sources["type"], first) == ("sources", {"type": "token", "text": "Denver "})
        assert not llm.gate.is_set()  # the second token does not exist yet
        llm.gate.set()
        rest = list(lines)
    assert [m["type"] for m in rest] == ["token", "token", "done"]


def test_events_carry_sources_tokens_and_timings(serve: Serve) -> None:
    server = serve(llm=MockLLM(delay_s=0.005))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        events = ask(client, QUESTION, top_k=2)
    names = [e.name for e in events]
    assert names[0] == "sources" and names[-1] == "done" and set(names[1:-1]) == {"token"}
    sources = events[0].data
    assert len(sources) == 2
    assert {"id", "source", "title", "text", "score", "number"} <= set(sources[0])
    assert sources[0]["source"] == "docs/football.md"
    done = events[-1].data
    assert done["usage"]["completion_tokens"] == len(names) - 2
    assert done["usage"]["prompt_tokens"] > 0
    timings = done["timings"]
    assert 0 <= timings["retrieval_ms"] <= timings["ttft_ms"] <= timings["total_ms"]
    # tokens arrive spread over time, not in one burst at the end
    token_times = [e.at for e in events if e.name == "token"]
    assert token_times[-1] - token_times[0] > 0.5 * 0.005 * (len(token_times) - 1)


def test_ndjson_and_plain_json_carry_the_same_answer(serve: Serve) -> None:
    server = serve()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        sse = "".join(e.data["text"] for e in ask(client, QUESTION) if e.name == "token")
        lines = ask_ndjson(client, QUESTION)
        whole = client.post("/v1/ask", json={"question": QUESTION, "stream": False}).json()
    assert [m["type"] for m in lines][:2] == ["sources", "token"]
    assert lines[-1]["type"] == "done" and "timings" in lines[-1]
    assert "".join(m["text"] for m in lines if m["type"] == "token") == sse
    assert whole["answer"] == sse.strip()
    assert whole["sources"][0]["source"] == "docs/football.md"
    assert set(whole) >= {"answer", "sources", "usage", "timings"}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"question": ""}, "question"),
        ({"question": "   "}, "blank"),
        ({"question": "x" * 5000}, "limit is 4000"),
        ({"question": "ok", "top_k": 0}, "top_k"),
        ({"question": "ok", "top_k": 21}, "less than or equal to 20"),
        ({"question": "ok", "top_k": 10**9}, "top_k"),
        ({"question": "ok", "top_k": "three"}, "top_k"),
        ({"question": "ok", "retrieval": "magic"}, "retrieval"),
        ({"question": "ok", "surprise": 1}, "surprise"),
        ({"question": 42}, "question"),
        ({}, "question"),
        ([1, 2], "body"),
    ],
)
def test_invalid_requests_get_a_422_with_a_message(serve: Serve, body: object, needle: str) -> None:
    server = serve()
    response = httpx.post(f"{server.url}/v1/ask", json=body, timeout=10)
    assert response.status_code == 422
    assert needle in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"question": ', "application/json", 400),
        (b'{"question": "hi",}', "application/json", 400),
        (b"hello", "application/json", 400),
        (b"\xff\xfe\xfa", "application/json", 400),
        (b"question=hi", "application/x-www-form-urlencoded", 415),
        (b'{"question": "' + b"x" * 2_000_000 + b'"}', "application/json", 413),
    ],
)
def test_bodies_that_are_not_json_or_too_large_are_refused(
    serve: Serve, content: bytes, content_type: str, status: int
) -> None:
    server = serve()
    response = httpx.post(
        f"{server.url}/v1/ask", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == status
    message = response.json()["error"]["message"]
    if status == 400:  # what is wrong, in words, where the parser stopped
        assert message.startswith("the body is not valid JSON"), message
        assert "decode error" not in message
        if content.startswith(b"{") or content == b"hello":
            assert "(at character " in message, message


def test_a_missing_index_is_a_503_that_says_to_ingest_until_one_is_ingested(
    serve: Serve, indexed: Settings, corpus: Path, tmp_path: Path
) -> None:
    later = indexed.replace(index_dir=tmp_path / "nothing-here")
    server = serve(index_dir=later.index_dir)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.post("/v1/ask", json={"question": QUESTION})
        ready = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
        ingest([corpus], later, HashingEmbedder())  # as `rag ingest` in another terminal
        ready_after = client.get("/readyz")
        answered = client.post("/v1/ask", json={"question": QUESTION, "stream": False})
    assert response.status_code == 503
    assert "rag ingest" in response.json()["error"]["message"]
    assert ready.status_code == 503 and "rag ingest" in ready.json()["error"]["message"]
    assert ready_after.status_code == 200, ready_after.text  # without a restart
    assert answered.status_code == 200 and answered.json()["sources"], answered.text


def test_an_index_of_another_model_is_a_503_that_names_both(indexed: Settings) -> None:
    app = create_app(indexed, embedder=HashingEmbedder(dimension=64), llm=MockLLM())
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        ready = client.get("/readyz")
        asked = client.post("/v1/ask", json={"question": QUESTION})
    reason = ready.json()["error"]["message"]
    assert ready.status_code == 503 and asked.status_code == 503
    assert "hashing-384 (384d)" in reason and "hashing-64 (64d)" in reason, reason
    assert asked.json()["error"]["message"] == reason


def test_an_index_replaced_by_another_ingest_is_read_by_the_next_request(
    serve: Serve, indexed: Settings, tmp_path: Path
) -> None:
    server = serve()
    question = {"question": "Where do quokkas live?", "stream": False, "top_k": 1}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        before = client.post("/v1/ask", json=question).json()["sources"][0]["source"]
        other = write_corpus(
            tmp_path / "other",
            {"quokkas.md": "# Quokkas\n\nQuokkas live on Rottnest island, where quokkas smile."},
        )
        ingest([other], indexed, HashingEmbedder())  # a second ingest into the same folder
        after = client.post("/v1/ask", json=question).json()["sources"][0]["source"]
    assert before != "other/quokkas.md" and after == "other/quokkas.md"


def test_a_backend_failure_mid_stream_is_an_error_event_then_the_next_request_works(
    serve: Serve,
) -> None:
    llm = MockLLM(fail_after=3)
    server = serve(llm=llm)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        events = ask(client, QUESTION)
        assert [e.name for e in events] == ["sources", "token", "token", "token", "error"]
        assert "failed after 3 tokens" in events[-1].data["message"]
        failed = client.post("/v1/ask", json={"question": QUESTION, "stream": False})
        assert failed.status_code == 502 and "failed" in failed.json()["error"]["message"]
        llm.fail_after = None
        assert ask(client, QUESTION)[-1].name == "done"


def test_a_client_that_leaves_stops_the_generation_within_one_token(serve: Serve) -> None:
    llm = GatedLLM()  # one token, then blocked: the rest exists only if the gate opens
    server = serve(llm=llm, max_generations=1)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/v1/ask", json={"question": QUESTION}) as response:
            events = sse_events(response)
            assert [next(events).name for _ in range(2)] == ["sources", "token"]
        # the client left: the server ends the generation without another token
        assert llm.ended.wait(10) and not llm.gate.is_set()
        # the slot is free: the next request is admitted and generates (the gate now open)
        llm.started.clear()
        llm.gate.set()
        assert ask(client, QUESTION)[-1].name == "done"
        assert llm.started.is_set()


def test_a_client_that_leaves_an_endless_answer_ends_it(serve: Serve) -> None:
    llm = EndlessLLM(delay_s=0.02)
    server = serve(llm=llm, max_generations=1)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/v1/ask", json={"question": QUESTION}) as response:
            events = sse_events(response)
            assert [next(events) for _ in range(6)][-1].name == "token"
        assert llm.ended.wait(10)  # ended by the disconnect, not at its 10,000th token
    assert llm.produced < 100 and llm.generations == 1


def ask_at(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        events = ask(client, QUESTION)
    assert events[-1].name == "done", events


def test_a_full_queue_is_refused_at_once_with_retry_after(serve: Serve) -> None:
    llm = GatedLLM()
    server = serve(llm=llm, max_generations=1, max_queue=1)
    results: list[int] = []

    def ask_in_background() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            events = ask(client, QUESTION)
            results.append(len(events))

    threads = [Background(ask_in_background) for _ in range(2)]
    threads[0].start()
    assert llm.started.wait(10)  # one is generating...
    threads[1].start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # ...and one waits in the queue
        if httpx.get(f"{server.url}/readyz").json()["waiting"] == 1:
            break
        time.sleep(0.01)
    started = time.perf_counter()
    refused = httpx.post(f"{server.url}/v1/ask", json={"question": QUESTION}, timeout=10)
    elapsed = time.perf_counter() - started
    llm.gate.set()
    for thread in threads:
        thread.join(30)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "busy" in refused.json()["error"]["message"]
    assert elapsed < 5  # at once: a queued request would wait for the gate, opened after
    assert results == [5, 5]  # both admitted requests completed: sources, 3 tokens, done


def test_health_answers_while_a_generation_is_blocked(serve: Serve) -> None:
    llm = GatedLLM()
    server = serve(llm=llm)
    thread = Background(ask_at, server.url).start()
    assert llm.started.wait(10)
    for _ in range(20):  # the generation cannot end before the gate opens, after these
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    assert thread.is_alive()
    llm.gate.set()
    thread.join(10)


def test_a_request_whose_client_left_while_queued_never_starts(serve: Serve) -> None:
    llm = GatedLLM()
    server = serve(llm=llm, max_generations=1)
    first = Background(ask_at, server.url).start()
    assert llm.started.wait(10)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("POST", "/v1/ask", json={"question": QUESTION}) as response:
            assert next(sse_events(response)).name == "sources"  # then it waits for the slot
        deadline = time.monotonic() + 5
        while client.get("/readyz").json()["waiting"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.get("/readyz").json()["waiting"] == 0
    llm.started.clear()
    llm.gate.set()
    first.join(10)
    assert not llm.started.wait(0.3)  # the abandoned request did not generate


def test_a_silent_stream_is_kept_alive_with_ping_comments(serve: Serve) -> None:
    llm = GatedLLM()
    server = serve(llm=llm, ping_interval_s=0.1)
    with (
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("POST", "/v1/ask", json={"question": QUESTION}) as response,
    ):
        lines = response.iter_lines()
        pings = 0
        for line in lines:
            pings += line.startswith(":")
            if pings == 3:
                break
        llm.gate.set()
        assert any(line.startswith("event: done") for line in lines)


def test_a_server_stopping_ends_open_streams_with_an_error_event(indexed: Settings) -> None:
    env = process_env(indexed, RAG_MOCK_TOKEN_DELAY_MS="500")
    with (
        ServerProcess(env) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
        client.stream("POST", "/v1/ask", json={"question": QUESTION}) as response,
    ):
        events = sse_events(response)
        assert [next(events).name, next(events).name] == ["sources", "token"]
        server.process.send_signal(signal.SIGTERM)
        started = time.perf_counter()
        rest = list(events)
        assert time.perf_counter() - started < 3
        # uvicorn stops gracefully, then re-raises the signal: the exit status says SIGTERM
        assert server.process.wait(10) in (0, -signal.SIGTERM)
    assert rest[-1].name == "error" and "shutting down" in rest[-1].data["message"]


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "rag.access"]


def test_each_request_leaves_one_access_log_line_with_its_timings(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve()
    with caplog.at_level(logging.INFO, logger="rag.access"):
        with httpx.Client(base_url=server.url, timeout=10) as client:
            ask(client, QUESTION)
            client.post("/v1/ask", json={"question": ""})
        # each line is written once its response has been sent
        wait_until(lambda: len(access_lines(caplog)) >= 2, "two access-log lines")
    records = access_lines(caplog)
    # one line per request (in the order the responses ended, which a busy machine may swap)
    assert sorted((r["path"], r["status"]) for r in records) == [
        ("/v1/ask", 200),
        ("/v1/ask", 422),
    ]
    answered = next(r for r in records if r["status"] == 200)
    assert answered["timings"]["ttft_ms"] > 0 and answered["usage"]["completion_tokens"] > 0
    assert answered["duration_ms"] >= answered["timings"]["total_ms"]


def test_non_ascii_text_and_line_breaks_survive_every_framing(serve: Serve) -> None:
    reply = "Zoë 東京 🚀 line\nbreak\u2028sep"
    server = serve(llm=MockLLM(reply=reply))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        sse = "".join(e.data["text"] for e in ask(client, QUESTION) if e.name == "token")
        lines = ask_ndjson(client, QUESTION)
    ndjson = "".join(m["text"] for m in lines if m["type"] == "token")
    assert sse == ndjson == reply
