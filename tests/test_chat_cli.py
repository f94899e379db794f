"""`rag chat` at a terminal (a pseudo-terminal, through pexpect) and `rag ask --conversation`:
each line follows up on the ones before, Ctrl-C stops an answer and the chat goes on, Ctrl-D
leaves and names the conversation, which `--conversation` continues; in this process and
against a server."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pexpect
import pytest

from bench.live import ServerProcess
from rag.embeddings import HashingEmbedder
from rag.ingestion import ingest
from rag.settings import Settings
from rag.stores import make_store
from tests.conftest import ROOT, interruptible
from tests.test_cli import rag

FIRST = "Where was Super Bowl 50 played?"
FOLLOW_UP = "Who was its quarterback?"
NAMED = re.compile(r"conversation ([0-9a-f]{32})")


@pytest.fixture
def indexed(corpus: Path, settings: Settings) -> Settings:
    ingest([corpus], settings, HashingEmbedder())
    return settings


def environment(settings: Settings, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "RAG_EMBEDDING_MODEL": "hashing",
        "RAG_INDEX_DIR": str(settings.index_dir),
        "RAG_MIN_SCORE": "0",
        "RAG_LLM": "mock",
        "RAG_MOCK_TOKEN_DELAY_MS": "0",
        **more,
    }


def chat(settings: Settings, *args: str, **env: str) -> Iterator[pexpect.spawn]:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "rag", "chat", *args],
        env=environment(settings, **env),
        encoding="utf-8",
        timeout=60,
        cwd=str(ROOT),
        preexec_fn=interruptible,
    )
    try:
        yield child
    finally:
        child.close(force=True)


def test_a_chat_follows_up_and_names_its_conversation(indexed: Settings) -> None:
    for child in chat(indexed):
        child.expect("Ask away")
        child.expect_exact("> ")
        child.sendline(FIRST)
        child.expect(r"\[1\] docs/football\.md")
        child.expect_exact("> ")
        child.sendline(FOLLOW_UP)
        child.expect(r"\[1\] docs/football\.md")
        child.expect_exact("> ")
        child.sendeof()
        child.expect(NAMED)
        cid = child.match.group(1)
        child.expect(pexpect.EOF)
    kept = make_store(indexed).conversations().get(cid)
    assert kept is not None
    assert [t.question for t in kept.turns] == [FIRST, FOLLOW_UP]
    assert kept.turns[1].done["usage"]["history_turns"] == 1
    # a script goes on with the same conversation
    done = rag("ask", "And who won?", "--conversation", cid, "--llm", "mock", env=plain(indexed))
    assert done.returncode == 0, done.stderr
    assert f"conversation {cid}" in done.stderr
    again = make_store(indexed).conversations().get(cid)
    assert again is not None and again.n_turns == 3


def plain(settings: Settings) -> dict[str, str]:
    return {k: v for k, v in environment(settings).items() if k.startswith(("RAG_", "HF_"))}


def test_ctrl_c_stops_an_answer_and_the_chat_goes_on(indexed: Settings) -> None:
    for child in chat(indexed, RAG_MOCK_TOKEN_DELAY_MS="300"):
        child.expect_exact("> ")
        child.sendline(FIRST)
        child.expect_exact(FIRST + "\r\n")  # the terminal's echo
        # the answer's first words (not any word: a busy machine may print something before)
        child.expect_exact("According to [1],")
        child.sendintr()
        child.expect_exact("(stopped)")
        child.expect_exact("> ")
        child.sendcontrol("c")  # at the prompt: leave
        child.expect(NAMED)
        cid = child.match.group(1)
        child.expect(pexpect.EOF)
    kept = make_store(indexed).conversations().get(cid)
    assert kept is not None and [t.status for t in kept.turns] == ["cancelled"]


def test_an_unknown_conversation_is_one_line_and_exit_1(indexed: Settings) -> None:
    done = rag("ask", FIRST, "--conversation", "0" * 32, "--llm", "mock", env=plain(indexed))
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: no conversation '000")
    new = rag("ask", FIRST, "--conversation", "new", "--llm", "mock", "--json", env=plain(indexed))
    assert new.returncode == 0, new.stderr
    assert re.fullmatch(r"[0-9a-f]{32}", json.loads(new.stdout)["conversation_id"])


@pytest.mark.slow
def test_a_chat_with_a_server_continues_there(indexed: Settings) -> None:
    env = {k: v for k, v in plain(indexed).items() if k != "HF_HUB_OFFLINE"}
    with ServerProcess(env) as server:
        for child in chat(indexed, "--url", server.url):
            child.expect_exact("> ")
            child.sendline(FIRST)
            child.expect(r"\[1\] docs/football\.md")
            child.expect_exact("> ")
            child.sendline(FOLLOW_UP)
            child.expect(r"\[1\] docs/football\.md")
            child.sendeof()
            child.expect(NAMED)
            cid = child.match.group(1)
        turns = httpx.get(f"{server.url}/v1/conversations/{cid}", timeout=10).json()["turns"]
    assert [t["question"] for t in turns] == [FIRST, FOLLOW_UP]
    assert turns[1]["done"]["usage"]["history_turns"] == 1
