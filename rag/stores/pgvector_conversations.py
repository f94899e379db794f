"""Conversations in PostgreSQL, beside the pgvector index (tables `rag_conversations` and
`rag_turns`, made by the store's migrations): every worker of every server sees the same, and
each change is one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from rag.conversation import ID_PATTERN, Conversation, Limits, Turn, new_id

Connect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


class PostgresConversations:
    def __init__(self, connection: Connect, limits: Limits) -> None:
        self.connection = connection  # the store's pooled connections, errors mapped
        self.limits = limits

    def create(self, title: str, owner: str = "") -> str:
        conversation_id, now = new_id(), time.time()
        with self.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO rag_conversations (id, owner, title, created, updated) "
                "VALUES (%s, %s, %s, %s, %s)",
                [conversation_id, owner, title, now, now],
            )
            conn.execute(
                "DELETE FROM rag_conversations WHERE updated < %s", [now - self.limits.max_age_s]
            )
            conn.execute(
                "DELETE FROM rag_conversations WHERE id IN (SELECT id FROM rag_conversations "
                "ORDER BY updated DESC, id OFFSET %s)",
                [self.limits.conversations],
            )
        return conversation_id

    def get(self, conversation_id: str, owner: str = "") -> Conversation | None:
        if not ID_PATTERN.fullmatch(conversation_id):
            return None
        with self.connection() as conn:
            row = conn.execute(
                "SELECT id, title, created, updated FROM rag_conversations "
                "WHERE id = %s AND owner = %s",
                [conversation_id, owner],
            ).fetchone()
            if row is None:
                return None
            bodies = conn.execute(
                "SELECT body FROM rag_turns WHERE conversation = %s ORDER BY number",
                [conversation_id],
            ).fetchall()
        turns = tuple(Turn.from_json(body) for (body,) in bodies)
        return Conversation(row[0], row[1], row[2], row[3], turns=turns, n_turns=len(turns))

    def append(self, conversation_id: str, turn: Turn) -> None:
        with self.connection() as conn, conn.transaction():
            locked = conn.execute(  # one append at a time per conversation: numbers stay unique
                "UPDATE rag_conversations SET updated = %s WHERE id = %s RETURNING id",
                [time.time(), conversation_id],
            ).fetchone()
            if locked is None:
                return  # deleted meanwhile: nothing to add to
            (number,) = conn.execute(
                "SELECT coalesce(max(number), 0) + 1 FROM rag_turns WHERE conversation = %s",
                [conversation_id],
            ).fetchone() or (1,)
            conn.execute(
                "INSERT INTO rag_turns (conversation, number, body) VALUES (%s, %s, %s)",
                [conversation_id, number, Jsonb(turn.to_json())],
            )
            conn.execute(
                "DELETE FROM rag_turns WHERE conversation = %s AND number <= %s",
                [conversation_id, number - self.limits.turns],
            )

    def page(self, limit: int, offset: int, owner: str = "") -> tuple[list[Conversation], int]:
        with self.connection() as conn:
            (total,) = conn.execute(
                "SELECT count(*) FROM rag_conversations WHERE owner = %s", [owner]
            ).fetchone() or (0,)
            rows = conn.execute(
                "SELECT c.id, c.title, c.created, c.updated, "
                "(SELECT count(*) FROM rag_turns t WHERE t.conversation = c.id) "
                "FROM rag_conversations c WHERE owner = %s ORDER BY updated DESC, id "
                "LIMIT %s OFFSET %s",
                [owner, limit, offset],
            ).fetchall()
        return [Conversation(r[0], r[1], r[2], r[3], n_turns=r[4]) for r in rows], total

    def delete(self, conversation_id: str, owner: str = "") -> bool:
        if not ID_PATTERN.fullmatch(conversation_id):
            return False  # not an id (a NUL would not even reach PostgreSQL)
        with self.connection() as conn:
            gone = conn.execute(
                "DELETE FROM rag_conversations WHERE id = %s AND owner = %s",
                [conversation_id, owner],
            )
            return gone.rowcount > 0
