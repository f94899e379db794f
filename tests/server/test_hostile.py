"""Hostile input: bodies built to hurt the parser or the memory, and uploads built to escape
the upload folder or to explode when read. Each gets a quick 4xx with a message."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench import reliability
from bench.live import ServerProcess
from rag.settings import Settings
from tests.pdfs import bomb_pdf
from tests.server.conftest import Serve, process_env

MB = reliability.MB


@pytest.mark.slow
def test_hostile_bodies_get_a_quick_4xx_and_memory_stays_bounded(indexed: Settings) -> None:
    with ServerProcess(process_env(indexed)) as server:
        result = reliability.hostile(server.url, server.process.pid, rounds=10)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            chunked = client.post(  # no Content-Length: the limit holds as the body streams in
                "/v1/ask", content=iter([b'{"question": "'] + [b"a" * MB] * 2 + [b'"}'])
            )
    assert len(result["cases"]) == len(reliability.HOSTILE)
    for case in result["cases"]:
        assert case["as_expected"], case
        assert case["ms"] < 1000, case
    assert result["rss_growth_mb"] < 50 and result["ready_after"]
    assert chunked.status_code == 413 and "larger than" in chunked.json()["error"]["message"]


def test_a_symlink_in_the_upload_folder_is_replaced_not_written_through(
    serve: Serve, tmp_path: Path
) -> None:
    server = serve()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    outside = tmp_path / "precious.md"
    outside.write_text("# Precious\n\nDo not overwrite me.")
    (uploads / "notes.md").symlink_to(outside)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        files = [("files", ("notes.md", b"# Notes\n\nNotes about llamas in the Andes."))]
        response = client.post("/v1/documents", files=files)
    assert response.status_code == 201, response.text
    assert outside.read_text() == "# Precious\n\nDo not overwrite me."
    assert not (uploads / "notes.md").is_symlink()
    assert "llamas" in (uploads / "notes.md").read_text()


def test_a_symlink_to_a_file_outside_a_folder_is_not_ingested(serve: Serve, tmp_path: Path) -> None:
    server = serve()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("The root password is hunter2.")
    (uploads / "innocent.txt").symlink_to(secret)  # planted by someone with disk access
    with httpx.Client(base_url=server.url, timeout=30) as client:
        files = [("files", ("llamas.md", b"# Llamas\n\nLlamas live in the Andes."))]
        response = client.post("/v1/documents", files=files)
        assert response.status_code == 201, response.text
        listed = [d["id"] for d in client.get("/v1/documents").json()["documents"]]
        answer = client.post("/v1/ask", json={"question": "root password?", "stream": False})
    assert "uploads/innocent.txt" not in listed and "uploads/llamas.md" in listed
    assert "hunter2" not in answer.text


def test_a_zip_bomb_pdf_is_refused_quickly_with_a_reason(serve: Serve, tmp_path: Path) -> None:
    server = serve()
    bomb = bomb_pdf(expanded_mb=300)
    assert len(bomb) < MB  # a small file that would inflate to 300 MB
    with httpx.Client(base_url=server.url, timeout=60) as client:
        started = time.perf_counter()
        response = client.post("/v1/documents", files=[("files", ("bomb.pdf", bomb))])
        elapsed = time.perf_counter() - started
    assert response.status_code == 422, response.text
    assert "bomb.pdf" in response.json()["error"]["message"]
    assert "zip bomb" in response.json()["error"]["message"]
    assert elapsed < 5
    assert not (tmp_path / "uploads" / "bomb.pdf").exists()


def test_a_200_mb_upload_is_refused_before_it_is_read(serve: Serve, tmp_path: Path) -> None:
    server = serve()
    size = 200 * MB

    def body() -> Iterator[bytes]:  # streamed, without Content-Length: only the limit stops it
        yield (
            b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\n"
        )
        block = b"x" * MB
        for _ in range(size // MB):
            yield block
        yield b"\r\n--b--\r\n"

    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:  # says 200 MB, sends 0
        raw.sendall(
            b"POST /v1/documents HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n" % size
        )
        declared = b""
        while chunk := raw.recv(65536):  # the server answers, then closes
            declared += chunk
    with httpx.Client(base_url=server.url, timeout=60) as client:
        started = time.perf_counter()
        try:
            streamed = client.post(
                "/v1/documents",
                content=body(),
                headers={"content-type": "multipart/form-data; boundary=b"},
            )
            refused: int | None = streamed.status_code
            text = streamed.text
        except httpx.TransportError:  # the server answered and closed before the body ended
            refused, text = None, ""
        elapsed = time.perf_counter() - started
        alive = client.get("/healthz").status_code  # a refusal, not a crash: it still answers
    assert declared.startswith(b"HTTP/1.1 413") and b"larger than" in declared
    if refused is not None:
        assert refused == 413 and "larger than" in text, (refused, text)
    assert alive == 200
    assert server.errors.messages() == []  # no traceback: the limit refused it
    assert elapsed < 10
    uploads = tmp_path / "uploads"
    assert not uploads.exists() or os.listdir(uploads) == []  # no file, no temporary left
