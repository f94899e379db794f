"""/v1/documents: uploads searchable when the call returns; names that could escape refused."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from rag.formats.archive import OLE_MAGIC
from rag.settings import Settings
from tests.office_files import docx_file, xlsx_file
from tests.server.conftest import Serve
from tests.server.live import ask


def test_an_upload_is_searchable_when_the_call_returns_and_can_be_deleted(
    serve: Serve, tmp_path: Path
) -> None:
    server = serve()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        files = [
            (
                "files",
                ("zebras.md", b"# Zebras of Mars\n\nZebras of Mars graze in Olympus crater."),
            ),
            ("files", ("broken.pdf", b"%PDF-1.4 this is not really a pdf")),
        ]
        response = client.post("/v1/documents", files=files)
        assert response.status_code == 201, response.text
        body = response.json()
        assert [d["id"] for d in body["documents"]] == ["uploads/zebras.md"]
        assert body["skipped"][0]["name"] == "broken.pdf"
        assert not (tmp_path / "uploads" / "broken.pdf").exists()  # nothing half-usable left
        events = ask(client, "Where do zebras graze on Mars?", top_k=1)
        assert events[0].data[0]["source"] == "uploads/zebras.md"
        listed = {d["id"]: d for d in client.get("/v1/documents").json()["documents"]}
        assert listed["uploads/zebras.md"]["uploaded"] is True
        assert listed["docs/football.md"]["uploaded"] is False
        assert client.delete("/v1/documents/docs/football.md").status_code == 409
        assert client.delete("/v1/documents/uploads/nope.md").status_code == 404
        assert client.delete("/v1/documents/uploads/zebras.md").status_code == 200
        left = {d["id"] for d in client.get("/v1/documents").json()["documents"]}
        assert "uploads/zebras.md" not in left and "docs/football.md" in left
        events = ask(client, "Where do zebras graze on Mars?", top_k=1)
        assert events[0].data[0]["source"] != "uploads/zebras.md"


@pytest.mark.parametrize(
    "name",
    [
        "../escape.md",
        "../../etc/escape.md",
        "/tmp/escape.md",
        "sub/escape.md",
        "..\\escape.md",
        "..",
        ".hidden.md",
        "escape.exe",
        "",
    ],
)
def test_names_that_could_escape_the_upload_folder_are_refused(
    serve: Serve, tmp_path: Path, name: str
) -> None:
    server = serve()
    before = set(tmp_path.rglob("*"))
    # where the name would land, written through: from the upload folder, from the server's
    # working directory, and as an absolute path (/tmp/escape.md, ../../etc/escape.md)
    uploads = tmp_path / "uploads"
    landings = {os.path.normpath(base / name.replace("\\", "/")) for base in (uploads, Path.cwd())}
    targets = {Path(t) for t in landings if name} - {uploads}
    seen = {t: t.stat().st_mtime_ns if t.is_file() else None for t in targets}
    response = httpx.post(
        f"{server.url}/v1/documents", files=[("files", (name, b"text"))], timeout=30
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"]
    assert set(tmp_path.rglob("*")) - before <= {uploads}
    for target in targets:  # nothing written there, nor anywhere under tmp_path
        assert (target.stat().st_mtime_ns if target.is_file() else None) == seen[target], target


def test_a_nul_byte_in_a_name_is_refused(serve: Serve, tmp_path: Path) -> None:
    server = serve()
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="a\x00../../x.md"\r\nContent-Type: text/plain\r\n\r\nhello\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    response = httpx.post(
        f"{server.url}/v1/documents",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert response.status_code == 422
    assert not list(tmp_path.glob("**/x.md"))


def test_a_file_over_the_size_limit_is_refused(serve: Serve, tmp_path: Path) -> None:
    server = serve(max_upload_bytes=1000)
    response = httpx.post(
        f"{server.url}/v1/documents", files=[("files", ("big.txt", b"x" * 2000))], timeout=30
    )
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]
    assert not (tmp_path / "uploads" / "big.txt").exists()


def test_an_upload_with_the_name_of_an_earlier_one_is_refused_unless_replace(
    serve: Serve, tmp_path: Path
) -> None:
    server = serve()
    first = ("files", ("animal.md", b"# Animal\n\nThe tapir eats ferns in the forest."))
    second = ("files", ("animal.md", b"# Animal\n\nThe zebra eats grass on the plain."))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/v1/documents", files=[first]).status_code == 201
        clash = client.post("/v1/documents", files=[second])
        assert clash.status_code == 409, clash.text
        message = clash.json()["error"]["message"]
        assert "uploads/animal.md" in message and "replace=true" in message
        assert b"tapir" in (tmp_path / "uploads" / "animal.md").read_bytes()  # nothing lost
        assert ask(client, "What eats ferns?", top_k=1)[0].data[0]["source"] == "uploads/animal.md"
        replaced = client.post("/v1/documents", files=[second], data={"replace": "true"})
        assert replaced.status_code == 201, replaced.text
        assert replaced.json()["documents"][0]["replaced"] is True
        assert b"zebra" in (tmp_path / "uploads" / "animal.md").read_bytes()
        new = client.post("/v1/documents", files=[("files", ("other.md", b"# O\n\nOkapis."))])
        assert new.json()["documents"][0]["replaced"] is False


def test_an_upload_keeps_the_index_settings_it_was_built_with(
    indexed: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The index was built with 40/8-token chunks; a server started with the defaults (none
    given, as `rag serve` with no RAG_CHUNK_* variable) adds an upload without re-chunking."""
    import dataclasses

    from rag.embeddings import HashingEmbedder
    from rag.llm.mock import MockLLM
    from rag.server.app import create_app
    from rag.stores import folder as store
    from tests.server.live import LiveServer

    defaults = dataclasses.replace(
        indexed, chunk_size_tokens=200, chunk_overlap_tokens=32, given=frozenset()
    )
    before = store.load(indexed.index_dir).manifest
    app = create_app(defaults, embedder=HashingEmbedder(), llm=MockLLM())
    with LiveServer(app) as server:
        files = [("files", ("okapi.md", b"# Okapi\n\nOkapis live in the Ituri forest."))]
        response = httpx.post(f"{server.url}/v1/documents", files=files, timeout=30)
        assert response.status_code == 201, response.text
    after = store.load(indexed.index_dir).manifest
    assert (after.chunk_size_tokens, after.chunk_overlap_tokens) == (40, 8)
    assert {s: e.sha256 for s, e in after.files.items() if s != "uploads/okapi.md"} == {
        s: e.sha256 for s, e in before.files.items()
    }
    assert "chunk settings changed" not in caplog.text


def test_office_files_and_spreadsheets_upload_and_answer(serve: Serve) -> None:
    server = serve()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        files = [
            ("files", ("keepers.docx", docx_file())),
            ("files", ("places.xlsx", xlsx_file())),
            ("files", ("locked.docx", OLE_MAGIC + bytes(512))),
        ]
        response = client.post("/v1/documents", files=files)
        assert response.status_code == 201, response.text
        body = response.json()
        assert sorted(d["id"] for d in body["documents"]) == [
            "uploads/keepers.docx",
            "uploads/places.xlsx",
        ]
        assert body["skipped"][0]["name"] == "locked.docx"
        assert "password-protected" in body["skipped"][0]["reason"]
        events = ask(client, "Who was keeper from 1874 to 1890?", top_k=1)
        assert events[0].data[0]["source"] == "uploads/keepers.docx"
        events = ask(client, "What is the length of the Kemijoki river?", top_k=1)
        assert events[0].data[0]["source"] == "uploads/places.xlsx"
