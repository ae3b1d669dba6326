"""`WriteBuffer`: rows reach the store without waiting for the next one, failures surface."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tasks.buffer import PagedSource, WriteBuffer, drain


class Store:
    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[tuple[int, Any]]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on

    def write(self, rows: Sequence[tuple[int, Any]]) -> None:
        self.threads.add(threading.current_thread().name)
        if self.fail_on is not None and any(i == self.fail_on for i, _ in rows):
            raise RuntimeError("disk full")
        self.batches.append(list(rows))

    @property
    def rows(self) -> list[int]:
        return [i for batch in self.batches for i, _ in batch]


def _wait_for(predicate, bound_s: float = 10.0) -> bool:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_a_lone_row_is_written_without_another_arriving_or_a_flush() -> None:
    store = Store()
    buffer = WriteBuffer(store.write)
    buffer.add(1, "answer")
    assert _wait_for(lambda: store.rows == [1]), "the row waited for a later arrival"
    buffer.add(2, "answer")
    assert _wait_for(lambda: store.rows == [1, 2])
    assert threading.current_thread().name not in store.threads  # off the caller's thread
    buffer.flush()


def test_flush_writes_everything_queued_and_closes() -> None:
    store = Store()
    buffer = WriteBuffer(store.write, max_batch=7)
    for i in range(100):
        buffer.add(i, i)
    buffer.flush()
    assert store.rows == list(range(100))
    assert max(len(b) for b in store.batches) <= 7
    with pytest.raises(RuntimeError, match="closed"):
        buffer.add(101, 0)


def test_a_failed_write_is_raised_by_flush_and_stops_later_adds() -> None:
    store = Store(fail_on=3)
    buffer = WriteBuffer(store.write, max_batch=1)
    for i in range(1, 4):
        buffer.add(i, i)
    assert _wait_for(lambda: buffer._error is not None)
    with pytest.raises(RuntimeError, match="disk full"):
        buffer.add(4, 4)
    with pytest.raises(RuntimeError, match="disk full"):
        buffer.flush()
    assert store.rows == [1, 2]


def test_flush_without_rows_starts_no_thread() -> None:
    buffer = WriteBuffer(Store().write)
    buffer.flush()
    assert buffer._thread is None


def test_put_waits_while_the_writer_is_behind_and_never_holds_more_than_the_bound() -> None:
    """Backpressure: a store slower than the target slows the step, the queue stays bounded."""
    gate = threading.Event()
    store = Store()

    def slow(rows: Sequence[tuple[int, Any]]) -> None:
        gate.wait(10)
        store.write(rows)

    buffer = WriteBuffer(slow, max_batch=5, max_pending=10)

    async def main() -> None:
        async def produce() -> None:
            for i in range(100):
                await buffer.put(i, i)

        producer = asyncio.create_task(produce())
        await asyncio.sleep(0.1)
        assert not producer.done()  # waiting for room, the loop still running
        assert len(buffer._rows) <= 10
        gate.set()
        await asyncio.wait_for(producer, 10)

    asyncio.run(main())
    buffer.flush()
    assert store.rows == list(range(100))
    assert buffer.peak_pending <= 10


def test_put_raises_a_failed_write_instead_of_waiting() -> None:
    store = Store(fail_on=0)
    buffer = WriteBuffer(store.write, max_batch=1, max_pending=1)

    async def main() -> None:
        for i in range(50):
            await buffer.put(i, i)

    with pytest.raises(RuntimeError, match="disk full"):
        asyncio.run(asyncio.wait_for(main(), 10))


def test_drain_runs_every_item_once_with_the_pool_size_in_flight() -> None:
    seen: list[int] = []
    in_flight = [0, 0]

    async def work(item: int) -> None:
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        await asyncio.sleep(0.001)
        in_flight[0] -= 1
        seen.append(item)

    pages = iter([list(range(k, min(k + 7, 100))) for k in range(0, 100, 7)])
    source = PagedSource(pages)
    asyncio.run(drain(source, work, 6))
    assert sorted(seen) == list(range(100)) and in_flight[1] == 6
    assert source.pages_read == 15


def test_drain_settles_started_items_then_raises_and_starts_no_more() -> None:
    started: list[int] = []
    finished: list[int] = []

    async def work(item: int) -> None:
        started.append(item)
        await asyncio.sleep(0.002 if item == 10 else 0.01)
        if item == 10:
            raise RuntimeError("bug on item 10")
        finished.append(item)

    with pytest.raises(RuntimeError, match="item 10"):
        asyncio.run(drain(range(1000), work, 4))
    assert sorted(finished) == sorted(set(started) - {10})  # every started one settled
    assert len(started) < 20


def test_drain_raises_a_failed_page_read() -> None:
    def pages() -> Iterator[list[int]]:
        yield [1, 2]
        raise OSError("database gone")

    done: list[int] = []

    async def work(item: int) -> None:
        done.append(item)

    with pytest.raises(OSError, match="database gone"):
        asyncio.run(drain(PagedSource(pages()), work, 3))
    assert sorted(done) == [1, 2]
