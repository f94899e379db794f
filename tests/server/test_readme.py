"""Every command in the README runs: the shell blocks against a live server (mock LLM) and the
Python blocks as written. `make test` is CI itself; `make run` has its own slow test below."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rag.settings import Settings
from tests.pdfs import text_pdf
from tests.server.conftest import Serve, process_env

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)


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
        assert done.stdout.strip(), command
        ran += 1
    assert ran >= 8


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
    with httpx.Client() as probe:
        port = 18000 + os.getpid() % 1000
        index = tmp_path / "index"
        process = subprocess.Popen(
            ["make", "run", f"PORT={port}", f"INDEX={index}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                try:
                    if probe.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                time.sleep(0.5)
            answer = probe.post(
                f"http://127.0.0.1:{port}/v1/ask",
                json={"question": "Which team won Super Bowl 50?", "stream": False},
                timeout=120,
            ).json()
            page = probe.get(f"http://127.0.0.1:{port}/")
        finally:
            os.killpg(process.pid, 15)
            process.wait(30)
    assert answer["sources"][0]["source"] == "data/Super_Bowl_50.md"
    assert answer["answer"] and answer["usage"]["completion_tokens"] > 0
    assert "Ask your documents" in page.text
    assert (index / "CURRENT").is_file()


def test_the_settings_table_names_every_setting() -> None:
    import dataclasses

    table = README[README.index("## Settings") : README.index("## Speed")]
    for field in dataclasses.fields(Settings):
        if field.metadata.get("internal"):  # bookkeeping (`given`), not a setting
            continue
        variable = f"`RAG_{field.name.upper()}`"
        assert variable in table, variable
