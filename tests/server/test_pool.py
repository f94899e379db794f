"""The generation pool on its own: admission, arrival order, slots held until the worker
thread ends, cancellation while queued, timeouts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rag.errors import Busy, GenerationTimeout
from rag.server.pool import GenerationPool


def counting(
    n: int, delay_s: float = 0.0, log: list[str] | None = None, name: str = ""
) -> Callable[[threading.Event], Iterator[int]]:
    def produce(cancel: threading.Event) -> Iterator[int]:
        if log is not None:
            log.append(name)
        for i in range(n):
            if cancel.wait(delay_s) if delay_s else cancel.is_set():
                return
            yield i

    return produce


def test_admission_stops_at_slots_plus_queue() -> None:
    async def main() -> None:
        pool = GenerationPool(slots=2, queue=1)
        tickets = [pool.admit() for _ in range(3)]
        with pytest.raises(Busy) as caught:
            pool.admit()
        assert caught.value.retry_after_s >= 1
        tickets[0].release()
        tickets[0].release()  # idempotent
        pool.admit()
        with pytest.raises(Busy):
            pool.admit()

    asyncio.run(main())


def test_waiting_requests_start_in_arrival_order() -> None:
    async def main() -> list[str]:
        pool = GenerationPool(slots=1, queue=10)
        started: list[str] = []

        async def run(name: str) -> list[int]:
            produce = counting(3, 0.01, started, name)
            return [i async for i in pool.stream(pool.admit(), produce)]

        results = await asyncio.gather(*(run(n) for n in "abcde"))
        assert all(r == [0, 1, 2] for r in results)
        return started

    assert asyncio.run(main()) == list("abcde")


def test_a_request_cancelled_while_queued_never_starts_and_frees_its_place() -> None:
    async def main() -> None:
        pool = GenerationPool(slots=1, queue=1)
        started: list[str] = []
        first = pool.stream(pool.admit(), counting(50, 0.01, started, "first"))
        await first.__anext__()

        async def queued() -> int:
            return await anext(pool.stream(pool.admit(), counting(1, 0, started, "second")))

        second = asyncio.create_task(queued())
        await asyncio.sleep(0.05)
        assert pool.waiting == 1
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        await first.aclose()
        await asyncio.sleep(0.1)
        assert started == ["first"] and pool.waiting == 0 and pool.running == 0
        pool.admit(), pool.admit()  # both places are free again

    asyncio.run(main())


def test_the_slot_is_held_until_the_worker_thread_has_finished() -> None:
    async def main() -> None:
        pool = GenerationPool(slots=1, queue=0)
        release = threading.Event()

        def stubborn(cancel: threading.Event) -> Iterator[int]:
            yield 1
            release.wait(5)  # ignores cancel for a while, like a model inside one step
            yield 2

        stream = pool.stream(pool.admit(), stubborn)
        assert await stream.__anext__() == 1
        await stream.aclose()
        with pytest.raises(Busy):
            pool.admit()
        release.set()
        for _ in range(100):
            if pool.running == 0:
                break
            await asyncio.sleep(0.01)
        pool.admit()

    asyncio.run(main())


def test_a_generation_past_the_timeout_is_stopped() -> None:
    async def main() -> None:
        pool = GenerationPool(slots=1, queue=0, timeout_s=0.2)
        started = time.perf_counter()
        with pytest.raises(GenerationTimeout, match=r"longer than 0\.2 s"):
            async for _ in pool.stream(pool.admit(), counting(1000, 0.05)):
                pass
        assert time.perf_counter() - started < 1.0

    asyncio.run(main())


def test_an_exception_in_the_producer_arrives_after_its_items() -> None:
    def failing(cancel: threading.Event) -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    async def main() -> list[int]:
        pool = GenerationPool(slots=1, queue=0)
        items: list[int] = []
        with pytest.raises(ValueError, match="boom"):
            async for item in pool.stream(pool.admit(), failing):
                items.append(item)
        return items

    assert asyncio.run(main()) == [1]


def test_the_busy_message_counts_what_is_taken_without_a_queue() -> None:
    async def main() -> None:
        pool = GenerationPool(slots=1, queue=0)
        pool.admit()
        with pytest.raises(Busy) as caught:
            pool.admit()
        assert str(caught.value) == (
            "the service is busy: its 1 generation slot and 0 queue places are taken "
            "(0 generating, 1 retrieving or queued); retry later"
        )

    asyncio.run(main())


class Watcher:
    """Records what the pool tells its watcher (the metrics), in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int] | str] = []

    def occupancy(self, running: int, waiting: int) -> None:
        self.seen.append(("occupancy", running, waiting))

    def refused(self) -> None:
        self.seen.append("refused")

    def timed_out(self) -> None:
        self.seen.append("timed_out")


def test_the_watcher_hears_every_change_refusal_and_timeout() -> None:
    async def main() -> Watcher:
        watcher = Watcher()
        pool = GenerationPool(slots=1, queue=0, timeout_s=0.2, watcher=watcher)
        ticket = pool.admit()
        with pytest.raises(Busy):
            pool.admit()
        assert [i async for i in pool.stream(ticket, counting(2))] == [0, 1]
        await asyncio.sleep(0.05)  # the worker thread's end is reported on the loop
        with pytest.raises(GenerationTimeout):
            async for _ in pool.stream(pool.admit(), counting(1000, delay_s=0.05)):
                pass
        deadline = time.monotonic() + 5
        while pool.running and time.monotonic() < deadline:  # the stopped worker winds down
            await asyncio.sleep(0.01)
        return watcher

    seen = asyncio.run(main()).seen
    assert seen[:4] == [("occupancy", 0, 1), "refused", ("occupancy", 1, 0), ("occupancy", 0, 0)]
    assert "timed_out" in seen
    assert seen.count("refused") == 1
    assert seen[-1] == ("occupancy", 0, 0)  # all freed, and said so
