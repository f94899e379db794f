"""Kept answers' events in PostgreSQL (tables `rag_answers` and `rag_answer_events`, made by the
store's migrations), so a client that reconnects to another worker or server still replays and
follows the answer: the producing process writes its events in batches as they come, readers
poll, a cancel is a flag the producer reads at its next batch."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from rag.corpus import Numbered

Connect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


class PostgresAnswers:
    def __init__(self, connection: Connect) -> None:
        self.connection = connection  # the store's pooled connections, errors mapped

    def record(self, answer_id: str, events: Sequence[Numbered], ended: bool) -> bool:
        now = time.time()
        with self.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO rag_answers (id, created) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [answer_id, now],
            )
            if events:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO rag_answer_events (answer, number, kind, body) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        [(answer_id, n, kind, Jsonb(body)) for n, kind, body in events],
                    )
            row = conn.execute(
                "UPDATE rag_answers SET ended = CASE WHEN %s THEN %s ELSE ended END "
                "WHERE id = %s RETURNING cancel",
                [ended, now, answer_id],
            ).fetchone()
        return bool(row and row[0])

    def read(self, answer_id: str, after: int) -> tuple[list[Numbered], bool] | None:
        with self.connection() as conn, conn.transaction():
            row = conn.execute(
                "UPDATE rag_answers SET read_at = %s WHERE id = %s RETURNING ended",
                [time.time(), answer_id],
            ).fetchone()
            if row is None:
                return None
            rows = conn.execute(
                "SELECT number, kind, body FROM rag_answer_events "
                "WHERE answer = %s AND number > %s ORDER BY number",
                [answer_id, after],
            ).fetchall()
        return [(int(n), str(kind), body) for n, kind, body in rows], row[0] is not None

    def cancel(self, answer_id: str) -> bool | None:
        with self.connection() as conn:
            row = conn.execute(
                "UPDATE rag_answers SET cancel = (ended IS NULL) WHERE id = %s "
                "RETURNING ended IS NULL",
                [answer_id],
            ).fetchone()
        return None if row is None else bool(row[0])

    def read_within(self, answer_id: str, seconds: float) -> bool:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT read_at > %s FROM rag_answers WHERE id = %s",
                [time.time() - seconds, answer_id],
            ).fetchone()
        return bool(row and row[0])

    def prune(self, ttl_s: float, keep: int) -> None:
        with self.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM rag_answers WHERE ended < %s", [time.time() - ttl_s])
            conn.execute(
                "DELETE FROM rag_answers WHERE id IN (SELECT id FROM rag_answers "
                "WHERE ended IS NOT NULL ORDER BY ended DESC, id OFFSET %s)",
                [keep],
            )
