"""The conversations a server keeps, on both stores through one fixture: turns in order, the
limits (turns, count, age), paging, deletion, ownership, and a crash mid-write."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.conversation import ConversationStore, Limits, Message, Turn
from rag.settings import Settings
from rag.stores import make_store
from rag.stores.sqlite_conversations import FILE_NAME, SqliteConversations


@pytest.fixture
def store(stored: Settings) -> Iterator[ConversationStore]:
    chosen = make_store(stored.replace(conversation_turns=3, max_conversations=4))
    yield chosen.conversations()
    chosen.close()


def turn(question: str, answer: str = "an answer", status: str = "done") -> Turn:
    return Turn(question, answer, status, ({"number": 1, "text": "a source"},), at=time.time())


def test_turns_come_back_in_order_with_what_became_of_them(store: ConversationStore) -> None:
    cid = store.create("Where was Super Bowl 50 played?")
    store.append(cid, turn("Where was Super Bowl 50 played?", "Levi's Stadium"))
    store.append(cid, turn("Who won it?", "Den", status="cancelled"))
    store.append(cid, Turn("And then?", "", "failed", error="the LLM failed"))
    conversation = store.get(cid)
    assert conversation is not None and conversation.n_turns == 3
    assert [t.status for t in conversation.turns] == ["done", "cancelled", "failed"]
    first = conversation.turns[0]
    assert (first.question, first.answer) == ("Where was Super Bowl 50 played?", "Levi's Stadium")
    assert first.sources == ({"number": 1, "text": "a source"},)
    assert conversation.turns[2].error == "the LLM failed"
    # the history for the next question: every question, only complete answers
    assert conversation.messages() == [
        Message("user", "Where was Super Bowl 50 played?"),
        Message("assistant", "Levi's Stadium"),
        Message("user", "Who won it?"),
        Message("user", "And then?"),
    ]


def test_the_oldest_turns_go_past_the_limit(store: ConversationStore) -> None:
    cid = store.create("q")
    for number in range(5):
        store.append(cid, turn(f"question {number}"))
    conversation = store.get(cid)
    assert conversation is not None
    assert [t.question for t in conversation.turns] == ["question 2", "question 3", "question 4"]


def test_pages_newest_first_and_the_least_recent_go_past_the_limit(
    store: ConversationStore,
) -> None:
    ids = [store.create(f"conversation {n}") for n in range(5)]
    page, total = store.page(limit=2, offset=0)
    assert total == 4  # the first one was dropped when the fifth came
    assert [c.id for c in page] == [ids[4], ids[3]]
    rest, _ = store.page(limit=10, offset=2)
    assert [c.id for c in rest] == [ids[2], ids[1]]
    assert store.get(ids[0]) is None
    store.append(ids[1], turn("again"))  # used: now the most recent
    page, _ = store.page(limit=1, offset=0)
    assert page[0].id == ids[1] and page[0].n_turns == 1 and page[0].turns == ()


def test_delete_unknown_ids_and_owners(store: ConversationStore) -> None:
    cid = store.create("q")
    assert store.get(cid, owner="someone else") is None
    assert not store.delete(cid, owner="someone else")
    assert store.get("not-an-id") is None and store.get("0" * 32) is None
    assert not store.delete("nul\x00id") and store.get("nul\x00id") is None
    assert store.delete(cid)
    assert store.get(cid) is None and not store.delete(cid)
    store.append(cid, turn("late"))  # an answer ending after its conversation was deleted
    assert store.get(cid) is None


def test_old_conversations_are_dropped(stored: Settings) -> None:
    chosen = make_store(stored)
    conversations = chosen.conversations()
    old = conversations.create("old")
    chosen.close()
    aged = make_store(stored.replace(conversation_days=1)).conversations()
    assert aged.get(old) is not None
    time.sleep(0.01)
    expired = make_store(stored.replace(conversation_days=1)).conversations()
    expired.limits = Limits(max_age_s=0.005)  # type: ignore[attr-defined]
    expired.create("new")
    assert aged.get(old) is None


KILLED_MID_APPEND = """
import os, signal, sys, time
from pathlib import Path
from rag.conversation import Limits, Turn
from rag.stores.sqlite_conversations import SqliteConversations
store = SqliteConversations(Path(sys.argv[1]), Limits())
cid, round_ = sys.argv[2], sys.argv[3]
for n in range(100000):
    store.append(cid, Turn(f"{round_}-q{n}", "a" * 5000, "done"))
"""


def last_of(conversations: ConversationStore, cid: str) -> str:
    """The question of the conversation's last turn ("" without any)."""
    found = conversations.get(cid)
    return found.turns[-1].question if found is not None and found.turns else ""


def test_a_kill_mid_append_leaves_whole_turns(settings: Settings) -> None:
    """SQLite beside the FAISS folder: kill -9 while turns are being written, at random
    moments; every turn read back afterwards is whole."""
    conversations = make_store(settings).conversations()
    cid = conversations.create("q")
    for round_, wait in enumerate((0.0, 0.05, 0.13)):
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_MID_APPEND, str(settings.index_dir), cid, str(round_)]
        )
        deadline = time.monotonic() + 120  # the child's start-up is slow on a busy machine
        while not last_of(conversations, cid).startswith(f"{round_}-"):
            assert time.monotonic() < deadline, "the child appended nothing in 120 s"
            time.sleep(0.01)
        time.sleep(wait)  # then kill it at some moment of its appends
        child.kill()
        child.wait()
    conversation = conversations.get(cid)
    assert conversation is not None and conversation.n_turns > 0
    assert all(t.answer == "a" * 5000 and t.status == "done" for t in conversation.turns)


def test_the_first_change_waits_for_another_connection_writing_to_the_file(
    tmp_path: Path,
) -> None:
    """The first change of a process switches the file to WAL mode, and SQLite refuses that
    switch at once, without waiting out the busy timeout, while another connection (another
    thread's first question, another worker) is writing: it must wait for the writer and go
    on ("database is locked" made a 503 in about one burst of 200 questions in five)."""
    other = sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE other_writer (a)")
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, other.execute, ["COMMIT"]).start()
    store = SqliteConversations(tmp_path, Limits())
    conversation_id = store.create("q")
    assert store.get(conversation_id) is not None
    other.close()
