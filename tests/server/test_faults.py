"""Faults against a live server: a hanging backend, a misbehaving OpenAI-compatible upstream, a
damaged index at start-up, an upload while answers stream. (A backend failing mid-stream and
clients leaving are in test_ask.py and test_load.py; kill -9 during an ingest in test_crash.py.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.embeddings import HashingEmbedder
from rag.llm.mock import MockLLM
from rag.llm.openai import OpenAICompatibleLLM
from rag.server.app import create_app
from rag.settings import Settings
from rag.stores import folder as store
from tests.conftest import Background, wait_until
from tests.fakes import GatedLLM
from tests.server.conftest import Serve
from tests.server.live import LiveServer, ask
from tests.upstream import Behaviour, FakeUpstream

QUESTION = "Who won Super Bowl 50?"


def test_a_hanging_backend_is_ended_by_the_generation_timeout_and_frees_its_slot(
    serve: Serve,
) -> None:
    llm = GatedLLM()
    server = serve(llm=llm, generation_timeout_s=1.0, max_generations=1, max_queue=0)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        started = time.perf_counter()
        events = ask(client, QUESTION)
        assert [e.name for e in events] == ["sources", "token", "error"]
        assert "longer than 1 s" in events[-1].data["message"]
        assert 1.0 <= time.perf_counter() - started < 3
        assert llm.ended.wait(2)  # the backend was told to stop, and did

        def freed() -> bool:  # its ticket is given back once the generator's thread has ended
            ready = client.get("/readyz").json()
            return (ready["running"], ready["waiting"]) == (0, 0)

        wait_until(freed, "the slot of the timed-out answer was freed", 2)
        # the one slot is free again: the next request is admitted, not refused with 429
        assert [e.name for e in ask(client, QUESTION)][-1] == "error"


def test_a_timeout_without_streaming_is_a_504_like_everywhere_else(serve: Serve) -> None:
    """`stream: false` and OpenAI's non-streamed chat: the timeout's own status and type."""
    server = serve(llm=GatedLLM(), generation_timeout_s=1.0)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        whole = client.post("/v1/ask", json={"question": QUESTION, "stream": False})
        chat = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]}
        )
    for response in (whole, chat):
        assert response.status_code == 504, response.text
        error = response.json()["error"]
        assert error["type"] == "server_error" and "longer than 1 s" in error["message"]


@pytest.mark.parametrize(
    ("behaviour", "needle"),
    [
        ("slow", "did not answer within 1 s"),
        ("stall", "did not answer within 1 s"),
        ("html", "sent no completion chunks"),
        ("bad_json", "malformed reply"),
        ("error", "500"),
    ],
)
def test_a_misbehaving_openai_upstream_is_a_clear_error_event_without_a_hang(
    serve: Serve, behaviour: Behaviour, needle: str
) -> None:
    with FakeUpstream(behaviour) as upstream:
        server = serve(llm=OpenAICompatibleLLM(upstream.url, "m", timeout_s=1.0))
        with httpx.Client(base_url=server.url, timeout=10) as client:
            started = time.perf_counter()
            events = ask(client, QUESTION)
            elapsed = time.perf_counter() - started
    assert events[0].name == "sources" and events[-1].name == "error"
    assert needle in events[-1].data["message"] and upstream.url in events[-1].data["message"]
    assert elapsed < 3


def test_an_upstream_that_is_down_is_a_clear_error_event_at_once(serve: Serve) -> None:
    with FakeUpstream("error") as upstream:
        url = upstream.url  # a port that was just served and is now closed
    server = serve(llm=OpenAICompatibleLLM(url, "m", timeout_s=1.0))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        started = time.perf_counter()
        events = ask(client, QUESTION)
        assert events[-1].name == "error" and "Connection error" in events[-1].data["message"]
        assert time.perf_counter() - started < 2


def _truncate(folder: Path) -> None:
    vectors = folder / store.VECTORS
    vectors.write_bytes(vectors.read_bytes()[:64])


def _other_model(folder: Path) -> None:
    manifest = json.loads((folder / store.MANIFEST).read_text())
    manifest["embedding_model"] = "sentence-transformers/some-other-model"
    (folder / store.MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (_truncate, "missing or damaged"),
        (lambda folder: (folder / store.CHUNKS).unlink(), "missing or damaged"),
        (lambda folder: (folder / store.MANIFEST).write_text("{"), "unreadable manifest"),
        (_other_model, "some-other-model"),
        (lambda folder: (folder.parent / store.POINTER).write_text("v1\n"), "missing version"),
    ],
    ids=["truncated-vectors", "missing-chunks", "corrupt-manifest", "other-model", "no-version"],
)
def test_a_damaged_index_keeps_the_server_unready_with_a_one_line_reason(
    serve: Serve, damage: Callable[[Path], Any], needle: str
) -> None:
    server = serve()
    index_dir = server.app.state.service.settings.index_dir
    version = store.current_version(index_dir)
    assert version is not None
    server.server.should_exit = True
    server.thread.join(10)
    damage(index_dir / version)
    restarted = serve()
    with httpx.Client(base_url=restarted.url, timeout=10) as client:
        ready = client.get("/readyz")
        asked = client.post("/v1/ask", json={"question": QUESTION})
        assert client.get("/healthz").status_code == 200  # alive, only not ready
    reason = ready.json()["error"]["message"]
    assert ready.status_code == 503 and needle in reason and "\n" not in reason
    assert asked.status_code == 503 and needle in asked.json()["error"]["message"]


def test_an_upload_while_answers_stream_is_searchable_atomically(serve: Serve) -> None:
    server = serve(llm=MockLLM(delay_s=0.01), max_generations=4, max_queue=64)
    new_text = "Quokkas of Rottnest island smile at every visitor who brings them leaves."
    seen: list[tuple[int, int, list[dict[str, Any]]]] = []  # (reader, status, sources)
    stop = threading.Event()

    def query(reader: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            while not stop.is_set():
                reply = client.post(
                    "/v1/ask", json={"question": "Who smiles at visitors?", "stream": False}
                )
                seen.append((reader, reply.status_code, reply.json().get("sources", [])))

    def answered(reader: int) -> int:
        return sum(1 for entry in list(seen) if entry[0] == reader)

    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream("POST", "/v1/ask", json={"question": QUESTION}) as long_answer,
    ):
        readers = [Background(query, n).start() for n in range(3)]
        wait_until(lambda: all(answered(n) for n in range(3)), "every reader answered once")
        files = [("files", ("quokkas.md", f"# Quokkas\n\n{new_text}".encode()))]
        uploaded = client.post("/v1/documents", files=files)
        assert uploaded.status_code == 201, uploaded.text
        after = client.post("/v1/ask", json={"question": "Who smiles at visitors?"})
        # each reader's next answer but one was asked after the upload returned
        before = [answered(n) for n in range(3)]
        wait_until(lambda: all(answered(n) >= before[n] + 2 for n in range(3)), "answers after")
        stop.set()
        for thread in readers:
            thread.join(30)
        streamed = long_answer.read().decode()
    assert "event: done" in streamed  # the answer that was streaming went on to its end
    assert "uploads/quokkas.md" in after.text  # searchable when the upload call returned
    assert seen and all(status == 200 for _, status, _ in seen)
    for reader in range(3):
        versions = []  # per reader, in the order it asked: did the answer see the new file?
        for _, _, sources in (entry for entry in seen if entry[0] == reader):
            quokka = [s for s in sources if s["source"] == "uploads/quokkas.md"]
            versions.append(bool(quokka))
            for source in quokka:  # never half a document: the whole chunk, as uploaded
                assert new_text in source["text"]
        assert versions == sorted(versions) and versions[-1]  # old index, then new: never back
        assert not versions[0]


def test_an_llm_that_fails_to_load_keeps_the_server_unready_with_the_reason(
    indexed: Settings, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-model.gguf"
    app = create_app(
        indexed.replace(llm="llamacpp", llm_model_path=str(missing)), embedder=HashingEmbedder()
    )
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        ready = client.get("/readyz")
        asked = client.post("/v1/ask", json={"question": QUESTION})
        alive = client.get("/healthz").status_code
    reason = ready.json()["error"]["message"]
    assert ready.status_code == 503 and reason.startswith("LLM not ready: "), reason
    assert str(missing) in reason and "\n" not in reason
    assert asked.status_code == 503 and asked.json()["error"]["message"] == reason
    assert alive == 200
