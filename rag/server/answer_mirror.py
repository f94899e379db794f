"""Kept answers across processes, when the store has a shared log (PostgreSQL): the producing
process mirrors each answer's events there in batches (`mirror`), and another process that a
client reconnects to replays and follows them from there (`RemoteAnswer`) or asks for a cancel,
which the producer reads at its next batch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable

from rag.answer import EVENTS, Event
from rag.corpus import Numbered, SharedAnswers
from rag.errors import RagError

log = logging.getLogger("rag.server")
BATCH_S = 0.05  # events gathered this long go to the database in one transaction
CANCEL_POLL_S = 0.5  # a quiet answer still looks for a cancel asked elsewhere this often
READ_POLL_S = 0.1  # a remote follower asks for new events this often


async def mirror(
    answer_id: str,
    shared: SharedAnswers,
    logged: Callable[[], tuple[list[Event], bool]],
    news: Callable[[], asyncio.Event],
    cancel: Callable[[], None],
) -> None:
    """Write an answer's events to `shared` as they come (`logged()`: the events so far and
    whether the answer ended; `news()`: what to wait on for more) until it ends; a cancel
    asked through another process calls `cancel`. A database that fails only costs the
    mirror (logged once): the answer goes on here."""
    sent, warned = 0, False
    while True:
        waiting = news()
        events, ended = logged()
        batch: list[Numbered] = [
            (number, event.kind, event.to_json())
            for number, event in enumerate(events[sent:], start=sent + 1)
        ]
        try:
            if await asyncio.to_thread(shared.record, answer_id, batch, ended):
                cancel()
            sent += len(batch)
        except RagError as err:
            if not warned:
                log.warning("answer %s is not shared with other workers: %s", answer_id, err)
                warned = True
        if ended and sent == len(events):
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CANCEL_POLL_S):  # not wait_for: see `rag.server.pool`
                await waiting.wait()
        await asyncio.sleep(BATCH_S)


class RemoteAnswer:
    """An answer another process produces (or produced), read from the shared log."""

    def __init__(self, answer_id: str, shared: SharedAnswers) -> None:
        self.id = answer_id
        self.shared = shared

    async def follow(self, after: int = 0) -> AsyncGenerator[tuple[int, Event], None]:
        """As `KeptAnswer.follow`: the events after number `after`, then the new ones."""
        seen = max(0, after)
        while True:
            found = await asyncio.to_thread(self.shared.read, self.id, seen)
            if found is None:  # dropped meanwhile
                return
            rows, ended = found
            for number, kind, body in rows:
                seen = number
                yield number, EVENTS[kind].from_json(body)
            if ended:  # its last events came in the same transaction as the mark
                return
            await asyncio.sleep(READ_POLL_S)

    async def stop(self) -> bool:
        return bool(await asyncio.to_thread(self.shared.cancel, self.id))
