"""Answers that outlive their connection. A streamed answer is produced by a task of its own into
a `KeptAnswer` (its events, numbered from 1), and each response follows that log: from the
start, or after the event a reconnecting client saw last. When the last follower leaves, the
answer goes on for its grace period (0 unless the request was `resumable`, so a plain answer
still stops within one token of its client leaving), then its producer is cancelled and the log
ends with an `error` event saying so. An explicit cancel (DELETE, the WebSocket's `cancel`)
sets the generation's cancel flag instead: the answer ends with `done`, `cancelled: true`.

The `AnswerBook` keeps the answers of this process: running ones always, ended ones for
`ttl_s` and at most `max_answers` of them (the oldest ended dropped first). Several workers do
not share it: a reconnect must reach the worker that produced the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator

from rag.answer import Error, Event
from rag.corpus import SharedAnswers
from rag.errors import AnswerNotFound, RagError
from rag.server.answer_mirror import RemoteAnswer, mirror

LEFT = (
    "the client left and did not come back within {grace:g} s: the answer was stopped "
    '(ask with "resumable": true to keep it going longer)'
)
STOPPING = "the server stopped: the answer was cut short; ask again"
ANSWER_ID = re.compile(r"[0-9a-f]{32}")
SHARED_PRUNE_S = 60.0  # the shared log is pruned at most this often, by whichever process


def new_answer_id() -> str:
    """An answer's id: 128 random bits (as hard to guess as the replay needs)."""
    return uuid.uuid4().hex


class KeptAnswer:
    def __init__(
        self,
        answer_id: str,
        cancel: threading.Event,
        grace_s: float,
        shared: SharedAnswers | None = None,
    ) -> None:
        self.id = answer_id
        self.shared = shared  # where other processes read it too (None: only here)
        self.cancel = cancel
        self.grace_s = grace_s
        self.events: list[Event] = []
        self.ended_at: float | None = None  # monotonic time the last event was logged
        self.followers = 0
        self.task: asyncio.Task[None] | None = None
        self.abandoned = LEFT.format(grace=grace_s)  # what the log ends with if abandoned
        self._news = asyncio.Event()  # replaced after each wake-up: followers wait on the current
        self._timer: asyncio.TimerHandle | None = None
        self._checking: asyncio.Task[None] | None = None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def log(self, event: Event) -> None:
        self.events.append(event)
        self._wake()

    def end(self) -> None:
        if self.ended_at is None:
            self.ended_at = time.monotonic()
            if self._timer is not None:
                self._timer.cancel()
            self._wake()

    def _wake(self) -> None:
        self._news.set()
        self._news = asyncio.Event()

    async def follow(self, after: int = 0) -> AsyncGenerator[tuple[int, Event], None]:
        """(number, event) for each event after number `after`, then the live ones as they are
        logged, until the last. While a follower reads, the answer is not stopped."""
        self._attach()
        try:
            seen = max(0, after)
            while True:
                news = self._news
                while seen < len(self.events):
                    seen += 1
                    yield seen, self.events[seen - 1]
                if self.ended:
                    return
                await news.wait()
        finally:
            self._detach()

    async def stop(self) -> bool:
        """An explicit cancel: the generation stops between two tokens and the answer ends with
        `done`, `cancelled: true` (a queued one when its turn comes, without generating).
        False when it had already ended."""
        if self.ended:
            return False
        self.cancel.set()
        return True

    def _attach(self) -> None:
        self.followers += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _detach(self) -> None:
        self.followers -= 1
        if self.followers > 0 or self.ended:
            return
        if self.grace_s <= 0:
            self._abandon()
        else:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.grace_s, self._abandon)

    def _abandon(self) -> None:
        """Nobody came back: cancel the producer (a queued answer never starts). With a shared
        log, unless a follower in another process read it within the grace period."""
        self._timer = None
        if self.ended or self.followers > 0 or self.task is None:
            return
        if self.shared is None or self.grace_s <= 0:
            self.task.cancel()
        else:
            self._checking = asyncio.create_task(self._abandon_unless_read(self.shared))

    async def _abandon_unless_read(self, shared: SharedAnswers) -> None:
        try:
            read = await asyncio.to_thread(shared.read_within, self.id, self.grace_s)
        except RagError:
            read = False
        if read and not self.ended and self.followers == 0:
            self._timer = asyncio.get_running_loop().call_later(self.grace_s, self._abandon)
        elif not self.ended and self.followers == 0 and self.task is not None:
            self.task.cancel()

    def mirrored(self) -> tuple[list[Event], bool]:
        return self.events, self.ended

    def news(self) -> asyncio.Event:
        return self._news


async def _produce(kept: KeptAnswer, events: AsyncGenerator[Event, None]) -> None:
    try:
        async for event in events:
            kept.log(event)
    except asyncio.CancelledError:  # abandoned: say so to whoever replays it
        kept.log(Error(kept.abandoned))
    finally:
        with contextlib.suppress(BaseException):
            await events.aclose()
        kept.end()
        kept.task = None  # nothing left to cancel; an ended answer keeps only its events


class AnswerBook:
    def __init__(self, max_answers: int, ttl_s: float, shared: SharedAnswers | None = None) -> None:
        self.max_answers = max_answers
        self.ttl_s = ttl_s
        self.shared = shared
        self._answers: OrderedDict[str, KeptAnswer] = OrderedDict()
        self._mirrors: set[asyncio.Task[None]] = set()
        self._pruned_at = 0.0

    def start(
        self,
        answer_id: str,
        events: AsyncGenerator[Event, None],
        cancel: threading.Event,
        grace_s: float,
    ) -> KeptAnswer:
        """Produce `events` into a new kept answer, in a task of its own (call from the loop)."""
        self.prune()
        kept = KeptAnswer(answer_id, cancel, grace_s, self.shared)
        kept.task = asyncio.create_task(_produce(kept, events), name=f"answer {kept.id}")
        self._answers[kept.id] = kept
        if self.shared is not None:
            copying = mirror(kept.id, self.shared, kept.mirrored, kept.news, cancel.set)
            task = asyncio.create_task(copying, name=f"mirror {kept.id}")
            self._mirrors.add(task)
            task.add_done_callback(self._mirrors.discard)
        return kept

    async def find(self, answer_id: str) -> KeptAnswer | RemoteAnswer:
        """The answer kept here, else (with a shared log) one another process produced;
        `AnswerNotFound` when neither has it."""
        with contextlib.suppress(AnswerNotFound):
            return self.get(answer_id)
        shared = self.shared
        if shared is not None and await self._shared_has(shared, answer_id):
            return RemoteAnswer(answer_id, shared)
        return self.get(answer_id)  # raises, with the reasons

    @staticmethod
    async def _shared_has(shared: SharedAnswers, answer_id: str) -> bool:
        if not ANSWER_ID.fullmatch(answer_id):
            return False
        # read past the end: whether it is there at all (and this reader present)
        return await asyncio.to_thread(shared.read, answer_id, 2**31 - 1) is not None

    def get(self, answer_id: str) -> KeptAnswer:
        """The answer, or `AnswerNotFound` for an unknown, expired or dropped one."""
        self.prune()
        kept = self._answers.get(answer_id)
        if kept is None:
            raise AnswerNotFound(
                f"no answer {answer_id!r} here: unknown, ended more than {self.ttl_s:g} s ago, "
                f"or dropped (the last {self.max_answers} are kept)"
                + ("" if self.shared else ", or produced by another worker process")
            )
        return kept

    def prune(self) -> None:
        """Drop ended answers past their time, then the oldest ended ones over the cap."""
        now = time.monotonic()
        for answer_id, kept in list(self._answers.items()):
            if kept.ended_at is not None and now - kept.ended_at > self.ttl_s:
                del self._answers[answer_id]
        ended = [a for a, kept in self._answers.items() if kept.ended]
        for answer_id in ended[: max(0, len(self._answers) - self.max_answers)]:
            del self._answers[answer_id]
        if self.shared is not None and now - self._pruned_at > SHARED_PRUNE_S:
            self._pruned_at = now
            pruning = asyncio.to_thread(self.shared.prune, self.ttl_s, self.max_answers)
            task = asyncio.create_task(pruning)
            self._mirrors.add(task)
            task.add_done_callback(self._mirrors.discard)

    def __len__(self) -> int:
        return len(self._answers)

    @property
    def mirroring(self) -> int:
        """Answers still being written to the shared log (and prunes under way)."""
        return len(self._mirrors)

    def close(self) -> None:
        """The server stops: every producer still running is cancelled."""
        for kept in self._answers.values():
            if kept.task is not None and not kept.task.done():
                kept.abandoned = STOPPING
                kept.task.cancel()
        for task in self._mirrors:
            task.cancel()
