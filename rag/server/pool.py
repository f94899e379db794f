"""Generation slots: at most `slots` answers generate at once, each in a worker thread (the LLM
never runs on the event loop); up to `queue` more wait in arrival order; beyond that, `Busy`.

A request takes a `Ticket` before anything else (so a full service refuses at once, before any
work), then `stream()` waits for a slot and relays what the worker thread produces. When the
consumer goes away (client disconnect, cancel message) the worker's cancel flag is set, so the
generation stops between two tokens; a request whose client left while it queued never starts.
The slot is freed when the worker thread has really finished, never earlier. A `PoolWatcher`
(the metrics) hears of every change in the counts, each refusal and each timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, cast

from rag.errors import Busy, GenerationTimeout

T = TypeVar("T")


def _places(n: int, what: str) -> str:
    """_places(1, "slot") -> '1 slot'; _places(0, "queue place") -> '0 queue places'"""
    return f"{n} {what}{'' if n == 1 else 's'}"


class PoolWatcher(Protocol):
    def occupancy(self, running: int, waiting: int) -> None: ...
    def refused(self) -> None: ...
    def timed_out(self) -> None: ...


class Unwatched:
    def occupancy(self, running: int, waiting: int) -> None:
        pass

    def refused(self) -> None:
        pass

    def timed_out(self) -> None:
        pass


@dataclass
class Ticket:
    """A place in the service: a running or waiting request. Release it exactly once."""

    pool: GenerationPool
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.pool._admitted -= 1
            self.pool.changed()


@dataclass(frozen=True)
class _Failure(Generic[T]):
    error: BaseException


_END = object()


class GenerationPool:
    def __init__(
        self,
        slots: int,
        queue: int,
        timeout_s: float = 120.0,
        watcher: PoolWatcher | None = None,
    ) -> None:
        self.slots = slots
        self.queue = queue
        self.timeout_s = timeout_s
        self._admitted = 0
        self._running = 0
        self._semaphore = asyncio.Semaphore(slots)
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="generation")
        self._recent_s: list[float] = []  # durations of the last generations, for Retry-After
        self.watcher: PoolWatcher = watcher or Unwatched()

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return max(0, self._admitted - self._running)

    @property
    def full(self) -> bool:
        return self._admitted >= self.slots + self.queue

    def changed(self) -> None:
        self.watcher.occupancy(self._running, self.waiting)

    def busy(self) -> Busy:
        """The refusal of one more question (counted as one)."""
        self.watcher.refused()
        return Busy(
            f"the service is busy: its {_places(self.slots, 'generation slot')} and "
            f"{_places(self.queue, 'queue place')} are taken ({self._running} generating, "
            f"{self.waiting} retrieving or queued); retry later",
            self.retry_after_s(),
        )

    def admit(self) -> Ticket:
        """A ticket, or `Busy` at once when `slots + queue` requests are already in."""
        if self.full:
            raise self.busy()
        self._admitted += 1
        self.changed()
        return Ticket(self)

    def retry_after_s(self) -> int:
        """A whole-second guess at when a place frees up: the typical generation time, times
        the queue ahead per slot."""
        typical = sorted(self._recent_s)[len(self._recent_s) // 2] if self._recent_s else 1.0
        return max(1, round(typical * (1 + self.waiting / self.slots)))

    async def stream(
        self,
        ticket: Ticket,
        produce: Callable[[threading.Event], Iterator[T]],
        cancel: threading.Event | None = None,
    ) -> AsyncGenerator[T, None]:
        """Run `produce(cancel)` in a worker thread once a slot is free and yield its items.
        Closing this generator (or setting `cancel`) stops the producer between two items. An
        exception in the producer is re-raised here after the items before it."""
        cancel = cancel or threading.Event()
        gone = threading.Event()  # the consumer has stopped reading
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[object] = asyncio.Queue()
        try:
            await self._semaphore.acquire()
        except BaseException:
            ticket.release()
            raise
        self._running += 1
        self.changed()
        started = time.perf_counter()

        put = _sender(loop, items, gone, cancel)

        def finished(_: object) -> None:
            self._running -= 1
            self._recent_s = [*self._recent_s[-19:], time.perf_counter() - started]
            self._semaphore.release()
            ticket.release()
            self.changed()

        future = loop.run_in_executor(self._executor, _pump, produce, cancel, gone, put)
        future.add_done_callback(finished)
        deadline = loop.time() + self.timeout_s
        try:
            while True:
                try:
                    # not wait_for: on Python 3.11 it loses a cancel (an abandoned answer's) that
                    # comes as the item does, and the generation then never stops
                    async with asyncio.timeout_at(deadline):
                        item = await items.get()
                except TimeoutError:
                    self.watcher.timed_out()
                    raise GenerationTimeout(
                        f"the generation took longer than {self.timeout_s:g} s and was stopped"
                    ) from None
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield cast(T, item)
        finally:
            gone.set()
            cancel.set()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _sender(
    loop: asyncio.AbstractEventLoop,
    items: asyncio.Queue[object],
    gone: threading.Event,
    cancel: threading.Event,
) -> Callable[[object], None]:
    """How the worker thread hands an item to the consumer's event loop; once the loop has
    closed (shutdown), nobody listens: the producer is told to stop."""

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(items.put_nowait, item)
        except RuntimeError:
            gone.set()
            cancel.set()

    return put


def _pump(
    produce: Callable[[threading.Event], Iterator[object]],
    cancel: threading.Event,
    gone: threading.Event,
    put: Callable[[object], None],
) -> None:
    """The worker thread's side of `stream`: each item of `produce(cancel)`, then `_END` or the
    failure; the producer is closed whatever happens."""
    iterator = produce(cancel)
    try:
        for item in iterator:
            if gone.is_set():  # nobody reads on: stop (a set `cancel` alone still
                break  # lets the producer finish, e.g. with its last event)
            put(item)
    except BaseException as err:  # relayed to the consumer, which decides
        put(_Failure(err))
    else:
        put(_END)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
