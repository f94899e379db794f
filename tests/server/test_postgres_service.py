"""The HTTP service on the pgvector store: several `rag serve` processes share one index (an
upload through one is searchable through the others when the call returns), and the database
going away is a 503 with the reason, then noticed again when it returns."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from bench.live import ServerProcess
from rag.embeddings import HashingEmbedder, make_embedder
from rag.ingestion import ingest
from rag.settings import Settings
from rag.stores.pgvector import PostgresStore
from tests.conftest import ROOT, OwnPostgres
from tests.server.live import sse_events

pytestmark = pytest.mark.slow


@pytest.fixture
def shared(corpus: Path, pg: Settings, tmp_path: Path) -> Settings:
    chosen = pg.replace(upload_dir=tmp_path / "uploads")
    ingest([corpus], chosen, HashingEmbedder())
    return chosen


def env_of(settings: Settings, **more: str) -> dict[str, str]:
    return {
        **settings.replace(min_score=0.0, llm="mock").to_env(),
        "RAG_EMBEDDING_MODEL": "hashing",
        **more,
    }


def answered_from(client: httpx.Client, question: str) -> str:
    response = client.post("/v1/ask", json={"question": question, "stream": False})
    assert response.status_code == 200, response.text
    return str(response.json()["sources"][0]["source"])


UPLOAD = ("glaciers.md", b"# Glaciers\n\nGlaciers are rivers of ice that carve valleys.")


def test_an_upload_through_one_worker_is_searchable_through_another(shared: Settings) -> None:
    env = env_of(shared)
    with (
        ServerProcess(env) as first,
        ServerProcess(env) as second,
        httpx.Client(base_url=first.url, timeout=30) as one,
        httpx.Client(base_url=second.url, timeout=30) as other,
    ):
        assert answered_from(other, "Broncos Super Bowl") == "docs/football.md"
        uploaded = one.post("/v1/documents", files={"files": UPLOAD})
        assert uploaded.status_code == 201, uploaded.text
        assert answered_from(other, "glaciers rivers of ice") == "uploads/glaciers.md"
        listed = {d["id"] for d in other.get("/v1/documents").json()["documents"]}
        assert "uploads/glaciers.md" in listed
        assert other.delete("/v1/documents/uploads/glaciers.md").status_code == 200
        assert answered_from(one, "glaciers rivers of ice") != "uploads/glaciers.md"


def test_a_conversation_started_on_one_server_continues_on_another(shared: Settings) -> None:
    env = env_of(shared, RAG_MOCK_TOKEN_DELAY_MS="0")
    with (
        ServerProcess(env) as first,
        ServerProcess(env) as second,
        httpx.Client(base_url=first.url, timeout=30) as one,
        httpx.Client(base_url=second.url, timeout=30) as other,
    ):
        started = one.post("/v1/ask", json={"question": "Who won Super Bowl 50?", "stream": False})
        cid = started.headers["x-conversation-id"]
        body = {"question": "Who was its MVP?", "conversation_id": cid, "stream": False}
        followed = other.post("/v1/ask", json=body)
        assert followed.status_code == 200, followed.text
        assert followed.json()["usage"]["history_turns"] == 1
        turns = one.get(f"/v1/conversations/{cid}").json()["turns"]
        assert [t["question"] for t in turns] == ["Who won Super Bowl 50?", "Who was its MVP?"]
        assert other.get("/v1/conversations").json()["total"] == 1


def test_serve_workers_share_the_store(shared: Settings) -> None:
    with (
        ServerProcess(env_of(shared), "--workers", "2") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        uploaded = client.post("/v1/documents", files={"files": UPLOAD})
        assert uploaded.status_code == 201, uploaded.text
        # new connections land on either worker: each of them finds the upload
        for _ in range(8):
            with httpx.Client(base_url=server.url, timeout=30) as fresh:
                assert answered_from(fresh, "glaciers rivers of ice") == "uploads/glaciers.md"


def test_the_database_going_away_is_a_503_with_the_reason_and_its_return_is_noticed(
    corpus: Path, settings: Settings, own_postgres: OwnPostgres
) -> None:
    chosen = settings.replace(store="pgvector", database_url=own_postgres.url)
    ingest([corpus], chosen, HashingEmbedder())
    env = env_of(chosen, RAG_MOCK_TOKEN_DELAY_MS="100")
    with (
        ServerProcess(env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        question = {"question": "Who won Super Bowl 50?"}
        with client.stream("POST", "/v1/ask", json=question) as streaming:
            events = sse_events(streaming)
            assert next(events).name == "sources"
            own_postgres.stop()  # PostgreSQL stops while the answer streams
            rest = [event.name for event in events]
        assert rest[-1] == "done"  # the answer had its sources: it finishes

        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "does not answer" in ready.json()["error"]["message"]
        refused = client.post("/v1/ask", json=question)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert "does not answer" in refused.json()["error"]["message"]
        with connect(f"{server.url.replace('http', 'ws')}/v1/ws") as ws:
            ws.send(json.dumps(question))
            message = json.loads(ws.recv(timeout=30))
        assert message["type"] == "error" and "does not answer" in message["message"]

        own_postgres.start()
        assert client.get("/readyz").status_code == 200
        assert answered_from(client, "Broncos Super Bowl") == "docs/football.md"


def test_api_workers_without_a_model_start_faster_on_onnx_than_torch(
    shared: Settings, llama_server: str
) -> None:
    """The LLM on its own server (llama.cpp's), the index in PostgreSQL, MiniLM through ONNX
    Runtime: `rag serve --workers 2` is ready in well under the time the same workers take
    with torch (measured here, on this machine: 1.3 s vs 5.3 s on an idle 2-core one; an
    absolute bound failed on slower machines) and answers from the LLM server."""
    make_embedder(shared.replace(embedding_runtime="onnx"))  # the ONNX export, once, beforehand
    env = env_of(
        shared,
        RAG_EMBEDDING_MODEL="all-MiniLM-L6-v2",
        RAG_EMBEDDING_RUNTIME="onnx",
        RAG_LLM="openai",
        RAG_OPENAI_BASE_URL=llama_server,
        RAG_OPENAI_MODEL="gemma",
        RAG_MAX_TOKENS="16",
    )
    PostgresStore(shared).drop_schema()  # the index again, with MiniLM this time
    store = PostgresStore(shared.replace(embedding_model="all-MiniLM-L6-v2"))
    ingest(
        [ROOT / "data"], store.settings, make_embedder(store.settings), store=store, progress=False
    )
    store.close()

    def start(runtime: str) -> float:
        started = time.perf_counter()
        with ServerProcess({**env, "RAG_EMBEDDING_RUNTIME": runtime}, "--workers", "2") as server:
            seconds = time.perf_counter() - started
            with httpx.Client(base_url=server.url, timeout=60) as client:
                answer = client.post(
                    "/v1/ask", json={"question": "Which team won Super Bowl 50?", "stream": False}
                ).json()
            assert answer["sources"][0]["source"] == "data/Super_Bowl_50.md"
            assert answer["answer"] and answer["usage"]["completion_tokens"] > 0
        return seconds

    onnx = min(start("onnx") for _ in range(2))
    torch = start("torch")
    assert onnx < 0.6 * torch, (onnx, torch)


def test_an_answer_resumes_and_is_cancelled_through_another_server(shared: Settings) -> None:
    from tests.server.test_resume import Read, read_sse

    env = env_of(shared, RAG_MOCK_TOKEN_DELAY_MS="30")
    question = {"question": "Who won Super Bowl 50?", "resumable": True}
    with (
        ServerProcess(env) as first,
        ServerProcess(env) as second,
        httpx.Client(base_url=first.url, timeout=30) as one,
        httpx.Client(base_url=second.url, timeout=30) as other,
    ):
        whole = Read()
        with one.stream("POST", "/v1/ask", json=question) as response:
            read_sse(response, whole)
        got = Read()
        with one.stream("POST", "/v1/ask", json=question) as response:
            lines = response.iter_lines()
            read_sse(response, got, itertools.takewhile(lambda _: got.text().count(" ") < 3, lines))
        rest = Read(answer_id=got.answer_id)  # the reconnect lands on the other server
        headers = {"Last-Event-ID": str(got.last_id)}
        with other.stream("GET", f"/v1/answers/{got.answer_id}/events", headers=headers) as r:
            assert r.status_code == 200
            read_sse(r, rest)
        numbers = got.numbers() + rest.numbers()
        assert numbers == list(range(1, len(numbers) + 1))
        assert got.text() + rest.text() == whole.text()
        assert rest.events[-1][1] == "done" and rest.events[-1][2]["answer_id"] == got.answer_id
        live = Read()
        with one.stream("POST", "/v1/ask", json=question) as response:
            lines = response.iter_lines()
            read_sse(response, live, itertools.takewhile(lambda _: not live.text(), lines))
            stopped = other.delete(f"/v1/answers/{live.answer_id}")
            assert stopped.json() == {"answer_id": live.answer_id, "cancelled": True}
            read_sse(response, live, lines)
        assert live.events[-1][1] == "done" and live.events[-1][2]["cancelled"] is True
        assert live.text() != whole.text()  # stopped before its end
        assert other.get("/v1/answers/" + "0" * 32 + "/events").status_code == 404


def test_a_follower_on_another_server_keeps_a_resumable_answer_going(shared: Settings) -> None:
    """The producing server sees nobody of its own after the disconnect; a follower reading
    through another server counts as present, so the grace period does not stop the answer."""
    from tests.server.test_resume import Read, read_sse

    env = env_of(shared, RAG_MOCK_TOKEN_DELAY_MS="60", RAG_RESUME_GRACE_S="0.5")
    question = {"question": "Who won Super Bowl 50?", "resumable": True}
    with (
        ServerProcess(env) as first,
        ServerProcess(env) as second,
        httpx.Client(base_url=first.url, timeout=30) as one,
        httpx.Client(base_url=second.url, timeout=30) as other,
    ):
        got = Read()
        with one.stream("POST", "/v1/ask", json=question) as response:
            lines = response.iter_lines()
            read_sse(response, got, itertools.takewhile(lambda _: not got.text(), lines))
        started = time.monotonic()
        rest = Read(answer_id=got.answer_id)
        with other.stream(
            "GET",
            f"/v1/answers/{got.answer_id}/events",
            headers={"Last-Event-ID": str(got.last_id)},
        ) as response:
            read_sse(response, rest)
        assert time.monotonic() - started > 1.0  # the answer went on well past the grace
        assert rest.events[-1][1] == "done", rest.events[-1]
        numbers = got.numbers() + rest.numbers()
        assert numbers == list(range(1, len(numbers) + 1))
