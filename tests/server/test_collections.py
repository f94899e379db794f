"""Collections over HTTP: uploads into a collection, /v1/collections, a filter on /v1/ask and
/v1/chat/completions (none admitted: "I don't know" without the LLM), deleting a collection."""

from __future__ import annotations

import json

import httpx
from websockets.sync.client import connect

from rag.answer import NO_ANSWER
from tests.server.conftest import Serve
from tests.server.live import ask

PUMP = b"# Pump manual\n\nPrime the pump with two litres of water before starting it."
VALVE = b"# Valve notes\n\nThe valve opens clockwise; prime it with grease each spring."


def test_a_collection_is_uploaded_listed_asked_within_and_deleted(serve: Serve) -> None:
    server = serve()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        manuals = client.post(
            "/v1/documents",
            files=[("files", ("pump.md", PUMP))],
            data={"collection": "manuals", "tag": ["team=infra"]},
        )
        assert manuals.status_code == 201, manuals.text
        assert manuals.json()["documents"][0]["collection"] == "manuals"
        assert manuals.json()["documents"][0]["tags"] == {"team": "infra"}
        notes = client.post("/v1/documents", files=[("files", ("valve.md", VALVE))])
        assert notes.json()["documents"][0]["collection"] == "default"
        listed = {c["name"]: c for c in client.get("/v1/collections").json()["collections"]}
        assert listed["manuals"] == {"name": "manuals", "documents": 1, "chunks": 1}
        assert listed["default"]["documents"] >= 2  # the served corpus and valve.md
        only = client.get("/v1/documents", params={"collection": "manuals"}).json()["documents"]
        assert [d["id"] for d in only] == ["uploads/pump.md"]

        question = "How do I prime it?"
        within = ask(client, question, filter={"collection": "manuals"})
        assert [s["source"] for s in within[0].data] == ["uploads/pump.md"]
        tagged = ask(client, question, filter={"tags": {"team": "ops"}})
        assert tagged[0].data == [] and tagged[1].data["text"] == NO_ANSWER
        assert tagged[-1].data["usage"]["prompt_tokens"] == 0  # the LLM was not asked
        bad = client.post("/v1/ask", json={"question": question, "filter": {"colour": "red"}})
        assert bad.status_code == 422 and "'colour'" in bad.json()["error"]["message"]

        chat = client.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": question}],
                "filter": {"source": {"prefix": "uploads/valve"}},
            },
        )
        assert chat.status_code == 200, chat.text
        assert [s["source"] for s in chat.json()["sources"]] == ["uploads/valve.md"]

        with connect(f"{server.ws_url}/v1/ws") as ws:
            ws.send(json.dumps({"question": question, "filter": {"collection": "manuals"}}))
            first = json.loads(ws.recv(timeout=10))
            assert first["type"] == "sources", first
            assert [s["source"] for s in first["sources"]] == ["uploads/pump.md"]
            assert first["sources"][0]["collection"] == "manuals"

        deleted = client.delete("/v1/collections/manuals")
        assert deleted.status_code == 200 and deleted.json()["documents"] == ["uploads/pump.md"]
        assert client.delete("/v1/collections/manuals").status_code == 404
        names = {c["name"] for c in client.get("/v1/collections").json()["collections"]}
        assert "manuals" not in names
