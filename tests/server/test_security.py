"""The API key guards every route but the health checks; CORS allows only listed origins."""

from __future__ import annotations

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from rag.server.security import PUBLIC_PATHS
from tests.server.conftest import Serve

KEY = "s3cret-key"


def test_every_route_but_health_needs_the_key(serve: Serve) -> None:
    server = serve(api_key=KEY)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        paths = client.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
        guarded = {p: m for p, m in paths["paths"].items() if p not in PUBLIC_PATHS}
        guarded |= {"/openapi.json": {"get": {}}, "/docs": {"get": {}}}
        assert set(guarded) - {"/openapi.json", "/docs"} == {
            "/v1/ask",
            "/v1/chat/completions",
            "/v1/models",
            "/v1/documents",
            "/v1/documents/{document_id}",
            "/v1/collections",
            "/v1/collections/{name}",
            "/v1/conversations",
            "/v1/conversations/{conversation_id}",
            "/metrics",
            "/v1/answers/{answer_id}/events",
            "/v1/answers/{answer_id}",
        }
        for template, methods in guarded.items():
            path = template.replace("{document_id}", "uploads/x.md").replace("{name}", "manuals")
            path = path.replace("{conversation_id}", "0" * 32).replace("{answer_id}", "0" * 32)
            for method in methods:
                for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}]:
                    response = client.request(method, path, headers=headers)
                    assert response.status_code == 401, (method, path, headers)
                    assert "API key" in response.json()["error"]["message"]
        for path in PUBLIC_PATHS:
            assert client.get(path).status_code == 200
        good = {"Authorization": f"Bearer {KEY}"}
        assert client.get("/v1/models", headers=good).status_code == 200
        answer = client.post(
            "/v1/ask", json={"question": "Who won?", "stream": False}, headers=good
        )
        assert answer.status_code == 200


def test_the_websocket_needs_the_key_too(serve: Serve) -> None:
    server = serve(api_key=KEY)
    with pytest.raises(InvalidStatus), connect(f"{server.ws_url}/v1/ws") as ws:
        ws.recv(timeout=5)  # not reached: the handshake is refused
    with connect(f"{server.ws_url}/v1/ws?api_key={KEY}") as ws:
        ws.send('{"question": "Who won?"}')
        assert '"sources"' in str(ws.recv(timeout=10))
    with connect(
        f"{server.ws_url}/v1/ws", additional_headers={"Authorization": f"Bearer {KEY}"}
    ) as ws:
        ws.send('{"question": "Who won?"}')
        assert '"sources"' in str(ws.recv(timeout=10))


def test_cors_allows_only_the_listed_origins(serve: Serve) -> None:
    server = serve(cors_origins="https://app.example")
    preflight = {"Access-Control-Request-Method": "POST"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        ok = client.options("/v1/ask", headers={"Origin": "https://app.example", **preflight})
        bad = client.options("/v1/ask", headers={"Origin": "https://evil.example", **preflight})
    assert ok.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in bad.headers


def test_no_cors_headers_by_default(serve: Serve) -> None:
    server = serve()
    response = httpx.get(f"{server.url}/healthz", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers


def test_chatty_libraries_log_only_their_warnings() -> None:
    """faiss's loader and bm25s log their internals at INFO / DEBUG (bm25s sets its own logger's
    level, so the filter sits on the handlers)."""
    import logging

    from rag.server.app import quiet_libraries

    def record(name: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "message", None, None)

    assert not quiet_libraries(record("bm25s", logging.DEBUG))
    assert not quiet_libraries(record("faiss.loader", logging.INFO))
    assert quiet_libraries(record("bm25s", logging.WARNING))
    assert quiet_libraries(record("rag.server", logging.INFO))
