"""Durable as soon as paid: a step's results reach the store within milliseconds, off the loop.

At 32+ concurrent requests a transaction per completion on the event loop costs throughput;
a buffer flushed only when the *next* completion arrives loses paid-for answers to a `kill -9`
(and `resume` pays for them again). `WriteBuffer` hands rows to one writer thread that commits
whatever has queued, one transaction per batch: while a commit runs, the next rows gather, so
batches grow with the arrival rate and a row waits at most about one commit. `flush()` (always
called when the step ends, also when it fails) waits for the queue to drain and re-raises a
failed write, so a retried step finds everything that completed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

Row = tuple[int, Any]


class WriteBuffer:
    """Queue + one writer thread calling `write(rows)`; the thread starts on the first row."""

    def __init__(self, write: Callable[[Sequence[Row]], Any], *, max_batch: int = 512,
                 name: str = "siegeflow-step-writer") -> None:
        self._write = write
        self._max_batch = max_batch
        self._name = name
        self._cond = threading.Condition()
        self._rows: list[Row] = []
        self._closed = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.written = 0

    def add(self, attempt_id: int, value: Any) -> None:
        """Queue one row; never touches the database (cheap on the event loop)."""
        with self._cond:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise RuntimeError("the write buffer is closed")
            self._rows.append((attempt_id, value))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout_s: float | None = 120.0) -> None:
        """Write everything queued, stop the thread; raise the first failed write."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                raise TimeoutError(f"{self._name}: rows still unwritten after {timeout_s} s")
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._rows or self._closed)
                if not self._rows or self._error is not None:
                    return  # closed and drained, or a write failed (flush re-raises it)
                rows = self._rows[: self._max_batch]
                del self._rows[: self._max_batch]
            try:
                self._write(rows)
            except BaseException as exc:  # noqa: BLE001 - handed to the step by flush()/add()
                with self._cond:
                    self._error = exc
                return
            self.written += len(rows)


async def settle_all(coros: Iterable[Awaitable[T]]) -> list[T]:
    """Await every coroutine, then raise the first failure.

    `asyncio.gather` raises on the first failure while its siblings keep running unobserved;
    a step that then flushes and fails would lose their results, and its retry would pay for
    them again. Here every request finishes (and is recorded) before the step fails.
    """
    results = await asyncio.gather(*coros, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [result for result in results if not isinstance(result, BaseException)]
