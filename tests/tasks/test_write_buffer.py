"""`WriteBuffer`: rows reach the store without waiting for the next one, failures surface."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from tasks.buffer import WriteBuffer


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
