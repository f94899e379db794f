"""Conversations beside a FAISS index folder: one SQLite file (`conversations.sqlite3`) in WAL
mode, each change one transaction, so a `kill -9` leaves every turn whole or absent and the
workers of one server (processes on one machine) share it."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from rag.conversation import ID_PATTERN, Conversation, Limits, Turn, new_id
from rag.errors import StoreUnavailable

FILE_NAME = "conversations.sqlite3"
TIMEOUT_S = 10.0  # how long a change waits for another writer
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_recent ON conversations (owner, updated DESC);
CREATE TABLE IF NOT EXISTS turns (
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (conversation, number)
);
"""


class SqliteConversations:
    def __init__(self, folder: Path, limits: Limits) -> None:
        self.path = folder / FILE_NAME
        self.limits = limits
        self._ready = False
        self._preparing = threading.Lock()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for one change or read, in a transaction (committed when the block
        ends without an error)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(
                sqlite3.connect(self.path, timeout=TIMEOUT_S, isolation_level=None)
            ) as conn:
                conn.execute("PRAGMA foreign_keys = ON")
                if not self._ready:
                    self._prepare(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.Error as err:
            raise StoreUnavailable(
                f"the conversations in {self.path} cannot be used: {err}"
            ) from None

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """WAL mode and the tables, once per process. Switching to WAL needs the file to itself,
        and SQLite refuses the switch at once ("database is locked", without waiting out the
        busy timeout) while another connection is in a transaction: the other threads wait
        for the switch here, other processes' connections are waited for by retrying."""
        with self._preparing:
            if self._ready:
                return
            deadline = time.monotonic() + TIMEOUT_S
            while True:
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as err:
                    if "locked" not in str(err) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            conn.executescript(SCHEMA)
            self._ready = True

    def create(self, title: str, owner: str = "") -> str:
        conversation_id, now = new_id(), time.time()
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO conversations (id, owner, title, created, updated) "
                "VALUES (?, ?, ?, ?, ?)",
                [conversation_id, owner, title, now, now],
            )
            self._prune(conn, now)
        return conversation_id

    def get(self, conversation_id: str, owner: str = "") -> Conversation | None:
        if not ID_PATTERN.fullmatch(conversation_id):
            return None
        with self._connection() as conn:
            row = conn.execute(
                "SELECT id, title, created, updated FROM conversations WHERE id = ? AND owner = ?",
                [conversation_id, owner],
            ).fetchone()
            if row is None:
                return None
            bodies = conn.execute(
                "SELECT body FROM turns WHERE conversation = ? ORDER BY number", [conversation_id]
            ).fetchall()
        turns = tuple(Turn.from_json(json.loads(body)) for (body,) in bodies)
        return Conversation(row[0], row[1], row[2], row[3], turns=turns, n_turns=len(turns))

    def append(self, conversation_id: str, turn: Turn) -> None:
        now = time.time()
        with self._connection() as conn:
            updated = conn.execute(
                "UPDATE conversations SET updated = ? WHERE id = ?", [now, conversation_id]
            )
            if updated.rowcount == 0:
                return  # deleted meanwhile: nothing to add to
            (last,) = conn.execute(
                "SELECT coalesce(max(number), 0) FROM turns WHERE conversation = ?",
                [conversation_id],
            ).fetchone()
            conn.execute(
                "INSERT INTO turns (conversation, number, body) VALUES (?, ?, ?)",
                [conversation_id, last + 1, json.dumps(turn.to_json())],
            )
            conn.execute(
                "DELETE FROM turns WHERE conversation = ? AND number <= ?",
                [conversation_id, last + 1 - self.limits.turns],
            )
            conn.execute(
                "UPDATE conversations SET updated = ? WHERE id = ?", [now, conversation_id]
            )

    def page(self, limit: int, offset: int, owner: str = "") -> tuple[list[Conversation], int]:
        with self._connection() as conn:
            (total,) = conn.execute(
                "SELECT count(*) FROM conversations WHERE owner = ?", [owner]
            ).fetchone()
            rows = conn.execute(
                "SELECT c.id, c.title, c.created, c.updated, "
                "(SELECT count(*) FROM turns t WHERE t.conversation = c.id) "
                "FROM conversations c WHERE owner = ? ORDER BY updated DESC, id LIMIT ? OFFSET ?",
                [owner, limit, offset],
            ).fetchall()
        return [Conversation(r[0], r[1], r[2], r[3], n_turns=r[4]) for r in rows], total

    def delete(self, conversation_id: str, owner: str = "") -> bool:
        if not ID_PATTERN.fullmatch(conversation_id):
            return False
        with self._connection() as conn:
            gone = conn.execute(
                "DELETE FROM conversations WHERE id = ? AND owner = ?", [conversation_id, owner]
            )
            return gone.rowcount > 0

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        """Drop conversations past the age limit, then the least recently used past the count."""
        conn.execute("DELETE FROM conversations WHERE updated < ?", [now - self.limits.max_age_s])
        conn.execute(
            "DELETE FROM conversations WHERE id IN (SELECT id FROM conversations "
            "ORDER BY updated DESC, id LIMIT -1 OFFSET ?)",
            [self.limits.conversations],
        )
