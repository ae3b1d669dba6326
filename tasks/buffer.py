"""Batched writes of a step's results: one store transaction per batch, not per request.

At 32+ concurrent requests a transaction per completion blocks the event loop long enough to
cost throughput. Rows are flushed every `every_s` seconds or `size` rows, and always when the
step ends — including when it fails, so a retried step finds everything that completed. Only a
hard kill (SIGKILL) can lose the last unflushed batch, which a resume then re-requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class WriteBuffer:
    def __init__(self, write: Callable[[Sequence[tuple[int, Any]]], Any],
                 size: int = 32, every_s: float = 0.2) -> None:
        self._write = write
        self.size = size
        self.every_s = every_s
        self._rows: list[tuple[int, Any]] = []
        self._last = time.monotonic()

    def add(self, attempt_id: int, value: Any) -> None:
        self._rows.append((attempt_id, value))
        if len(self._rows) >= self.size or time.monotonic() - self._last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        self._last = time.monotonic()
        if rows:
            self._write(rows)


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
    return results  # type: ignore[return-value]  (no exception left)
