"""Every command in the README runs: the shell blocks against a live server (mock LLM) and the
Python blocks as written. `make test` is CI itself; `make run` has its own slow test below."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.live import free_port
from rag.settings import Settings
from rag.stores.pgvector import PostgresStore
from tests.conftest import ROOT, wait_until, write_corpus
from tests.pdfs import text_pdf
from tests.server.conftest import Serve, process_env
from tests.upstream import FakeUpstream

README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^```(sh|bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(kind: str) -> list[str]:
    return [body for language, body in BLOCK.findall(README) if language == kind]


def commands() -> list[str]:
    """Shell commands of the README, continuation lines joined, comments dropped."""
    found = []
    for body in blocks("sh"):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip()
            if line and not line.startswith("#"):
                found.append(line)
    return found


def test_the_readme_shows_the_commands_this_test_runs() -> None:
    found = commands()
    assert any(c.startswith("curl -N") and "x-ndjson" in c for c in found)
    assert any("rag ask" in c and "--url" in c for c in found)
    assert any(c.startswith("make run") for c in found)
    assert len(blocks("python")) >= 2


def test_every_shell_command_in_the_readme_runs(
    serve: Serve, indexed: Settings, tmp_path: Path
) -> None:
    server = serve()
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "notes/ideas.md").write_text("# Ideas\n\nThe report concluded that tests help.\n")
    (home / "papers").mkdir()
    (home / "papers/report.pdf").write_bytes(text_pdf(["The report concluded: ship it."]))
    (home / "notes.md").write_text("# Notes\n\nUploaded notes about zebras.\n")
    (home / "paper.pdf").write_bytes(text_pdf(["A paper about giraffes."]))
    write_corpus(
        home / "manuals",
        {"pump.md": "# Pump\n\nPrime the pump before starting.", "valve.md": "# Valve\n\nTurn."},
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        **process_env(indexed, RAG_MOCK_TOKEN_DELAY_MS="0"),
    }
    ran = 0
    for command in commands():
        if command.startswith("make "):
            continue  # CI runs `make test`; `make run` is tested below
        command = (
            command.replace("http://127.0.0.1:8000", server.url)
            .replace("localhost:8000", server.url)
            .replace(".venv/bin/python", sys.executable)
            .replace("python scripts/", f"{sys.executable} {ROOT}/scripts/")
            .replace("curl -sf ", "curl -s ")  # -f and --fail-with-body exclude each other
            .replace("curl ", "curl --fail-with-body ")  # an HTTP error is a failing command
        )
        done = subprocess.run(
            ["bash", "-c", f"set -euo pipefail; {command}"],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (command, done.stdout[-500:], done.stderr[-1000:])
        check_output(command, done.stdout)
        ran += 1
    assert ran >= 10


def check_output(command: str, out: str) -> None:
    """What each README command prints has the shape the README shows."""
    if "x-ndjson" in command:
        lines = [json.loads(line) for line in out.splitlines() if line]
        assert sse_order([m["type"] for m in lines]), out[:500]
    elif "/events" in command:  # the resumed stream: events after the 5th, with their ids
        events = sse_text(out)
        assert sse_order(["sources", *(name for name, _, _ in events)]), out[:500]
        numbers = [int(str(event_id).rsplit(":", 1)[1]) for _, _, event_id in events]
        assert numbers and numbers[0] == 6 and numbers == sorted(numbers), numbers
    elif "/v1/documents" in command:
        uploaded = json.loads(out)
        assert {d["id"] for d in uploaded["documents"]} == {"uploads/notes.md", "uploads/paper.pdf"}
    elif "--json" in command:  # scripts/ask.py
        answer = json.loads(out)
        assert answer["answer"] and answer["sources"][0]["source"] == "docs/football.md"
    elif '"stream": false' in command:
        answer = json.loads(out)
        assert answer["answer"] and answer["sources"] and answer["conversation_id"], answer
    elif "/v1/ask" in command:
        events = sse_text(out)
        assert sse_order([name for name, _, _ in events]), out[:500]
        assert events[0][1][0]["source"] == "docs/football.md"
    elif "rag ingest" in command:
        assert "2 added" in out or "added 2" in out, out
    elif "--collection manuals" in command:  # rag search within the collection
        assert "manuals/pump.md" in out and "notes/" not in out, out
    elif "--where" in command:  # rag ask, among PDF and Word files only
        assert "[1] report.pdf" in out and "manuals/" not in out, out
    elif "rag search" in command:
        assert "notes/ideas.md" in out or "papers/report.pdf" in out, out
    else:  # rag ask: the answer, then its sources
        assert "Super Bowl 50" in out and "docs/football.md" in out, out


def sse_text(out: str) -> list[tuple[str, Any, str | None]]:
    """(event, data, id) of each SSE event in `out`."""
    events = []
    for block in out.replace("\r\n", "\n").split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and ": " in line[:7]
        )
        if "data" in fields:
            events.append(
                (fields.get("event", "message"), json.loads(fields["data"]), fields.get("id"))
            )
    return events


def sse_order(names: list[str]) -> bool:
    """sources, at least one token, done: in this order and nothing else."""
    return (
        len(names) >= 3
        and names[0] == "sources"
        and names[-1] == "done"
        and set(names[1:-1]) == {"token"}
    )


def test_the_python_examples_in_the_readme_run(
    serve: Serve, indexed: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve()
    monkeypatch.setenv("RAG_INDEX_DIR", str(indexed.index_dir))
    monkeypatch.setenv("RAG_EMBEDDING_MODEL", "hashing")
    monkeypatch.setenv("RAG_LLM", "mock")
    monkeypatch.setenv("RAG_MIN_SCORE", "0")
    monkeypatch.setenv("RAG_MOCK_TOKEN_DELAY_MS", "0")
    for source in blocks("python"):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(source.replace("http://127.0.0.1:8000", server.url), {})
        assert printed.getvalue().strip(), source


@pytest.mark.slow
def test_make_run_ingests_and_serves(tmp_path: Path) -> None:
    """What a new user types: the real MiniLM index of data/ and the real LLM, on a free port."""
    port, index = free_port(), tmp_path / "index"
    process = started(["make", "run", f"PORT={port}", f"INDEX={index}"], dict(os.environ))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as probe:
            wait_until(lambda: ready(probe, process), "make run serving", 600)
            answer = probe.post(
                "/v1/ask", json={"question": "Which team won Super Bowl 50?", "stream": False}
            ).json()
            page = probe.get("/")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    assert answer["sources"][0]["source"] == "data/Super_Bowl_50.md"
    assert answer["answer"] and answer["usage"]["completion_tokens"] > 0
    assert "Ask your documents" in page.text
    assert (index / "CURRENT").is_file()


@pytest.mark.slow
def test_the_pgvector_commands_run_against_a_real_postgres(postgres_url: str) -> None:
    """The README's `bash` blocks: several workers on PostgreSQL, and pgserver's own."""
    served, _ = blocks("bash")
    port, schema = free_port(), f"test_{uuid.uuid4().hex[:12]}"
    script = (
        served.replace("postgresql://rag:secret@db:5432/rag", f"'{postgres_url}'")
        .replace("python -m", f"{sys.executable} -m")
        .replace("--host 0.0.0.0", f"--host 127.0.0.1 --port {port}")
    )
    with FakeUpstream("ok") as upstream:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RAG_")},
            "HF_HUB_OFFLINE": "1",
            "RAG_DATABASE_SCHEMA": schema,
            "RAG_EMBEDDING_MODEL": "hashing",  # the commands as written, on a model-free index
            "RAG_OPENAI_BASE_URL": upstream.url,
        }
        process = started(["bash", "-c", f"set -euo pipefail\n{script}"], env)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                wait_until(lambda: ready(client, process), "the four workers ready", 120)
                answer = client.post(
                    "/v1/ask", json={"question": "Which team won Super Bowl 50?", "stream": False}
                )
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            printed = process.communicate(timeout=60)[0]
            drop = Settings(store="pgvector", database_url=postgres_url, database_schema=schema)
            PostgresStore(drop).drop_schema()
    assert answer.status_code == 200, answer.text
    assert answer.json()["answer"].startswith("Denver")  # from the upstream LLM
    assert answer.json()["sources"][0]["source"].startswith("data/")
    assert "data/Super_Bowl_50.md" in printed  # the search's printed hits
    assert upstream.received and upstream.received[0]["messages"][0]["role"] == "system"


def started(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """`command` from the repository's root in a session of its own (killed whole at the end),
    its output kept for the failure message."""
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def ready(client: httpx.Client, process: subprocess.Popen[str]) -> bool:
    if process.poll() is not None:
        raise AssertionError(process.communicate()[0][-2000:])
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_the_pgserver_command_prints_a_url_that_connects(tmp_path: Path) -> None:
    import psycopg
    from pgserver.postgres_server import get_server

    _, own = blocks("bash")
    first = own.splitlines()[0].replace(".venv/bin/python", sys.executable)
    done = subprocess.run(
        ["bash", "-c", first], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    try:
        url = done.stdout.strip()
        assert done.returncode == 0 and url.startswith("postgresql://"), done.stderr[-1000:]
        assert f"host={tmp_path / 'pgdata'}" in url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        get_server(tmp_path / "pgdata", cleanup_mode="stop").cleanup()  # it was left running


def test_the_settings_table_names_every_setting() -> None:
    import dataclasses

    table = README[README.index("## Settings") : README.index("## Speed")]
    for field in dataclasses.fields(Settings):
        if field.metadata.get("internal"):  # bookkeeping (`given`), not a setting
            continue
        variable = f"`RAG_{field.name.upper()}`"
        assert variable in table, variable
