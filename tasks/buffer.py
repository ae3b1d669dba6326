"""Durable as soon as paid: a step's results reach the store within milliseconds, off the loop.

At 32+ concurrent requests a transaction per completion on the event loop costs throughput;
a buffer flushed only when the *next* completion arrives loses paid-for answers to a `kill -9`
(and `resume` pays for them again). `WriteBuffer` hands rows to one writer thread that commits
whatever has queued, one transaction per batch: while a commit runs, the next rows gather, so
batches grow with the arrival rate and a row waits at most about one commit. `flush()` (always
called when the step ends, also when it fails) waits for the queue to drain and re-raises a
failed write, so a retried step finds everything that completed.

Bounded both ways (memory flat in a run's size): `put` waits while `max_pending` rows are
queued (a store slower than the target slows the step down instead of growing the queue), and
`drain` runs a step's work with a fixed pool of workers pulling from a paged source, never a
coroutine per attempt.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Row = tuple[int, Any]


class WriteBuffer:
    """Queue + one writer thread calling `write(rows)`; the thread starts on the first row."""

    def __init__(self, write: Callable[[Sequence[Row]], Any], *, max_batch: int = 512,
                 max_pending: int | None = None, name: str = "siegeflow-step-writer") -> None:
        self._write = write
        self._max_batch = max_batch
        #: `put` waits while this many rows are queued (default: four batches)
        self.max_pending = max_pending if max_pending is not None else 4 * max_batch
        self.peak_pending = 0
        self._room: asyncio.Event | None = None  # set from the writer thread: rows were taken
        self._event_loop: asyncio.AbstractEventLoop | None = None
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
            self.peak_pending = max(self.peak_pending, len(self._rows))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    async def put(self, attempt_id: int, value: Any) -> None:
        """`add`, after waiting (without blocking the loop) while `max_pending` rows are queued:
        the backpressure that keeps a step's memory bounded when the store is the slower side."""
        if len(self._rows) >= self.max_pending:  # rare: the writer is behind
            await self._room_for_one()
        self.add(attempt_id, value)

    async def _room_for_one(self) -> None:
        if self._room is None:
            self._room, self._event_loop = asyncio.Event(), asyncio.get_running_loop()
        while True:
            self._room.clear()  # before the check: a batch taken after it sets the event again
            with self._cond:
                if (len(self._rows) < self.max_pending or self._error is not None
                        or self._closed or self._thread is None):
                    return
            await self._room.wait()

    def _made_room(self) -> None:
        """From the writer thread: wake a `put` waiting for room (on its own loop)."""
        loop, room = self._event_loop, self._room
        if loop is not None and room is not None and not loop.is_closed():
            loop.call_soon_threadsafe(room.set)

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
            self._made_room()  # the next rows gather while these are written (held: batch + bound)
            try:
                self._write(rows)
            except BaseException as exc:  # noqa: BLE001 - handed to the step by flush()/add()
                with self._cond:
                    self._error = exc
                self._made_room()  # a waiting `put` raises the error
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


class PagedSource(Generic[T]):
    """Items from pages read off the event loop, for `drain`: the page being worked and the next
    one, read ahead in a thread while the workers are busy (two pages held at most).

    `pages` is a (blocking) iterator of lists, e.g. a keyset-paged store read; `expand` turns
    a page into work items (e.g. an attempt into its missing (attempt, judge) pairs), in the
    reading thread too. `close()` waits for a read still under way (`drain` calls it)."""

    def __init__(self, pages: Iterator[list[Any]],
                 expand: Callable[[list[Any]], Iterable[T]] | None = None) -> None:
        self._pages = pages
        self._expand = expand
        self._items: deque[T] = deque()
        self._lock = asyncio.Lock()
        self._ahead: asyncio.Future[Iterable[T] | None] | None = None
        self._done = False
        self.pages_read = 0

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        async with self._lock:  # one reader at a time: a page is read once, in order
            while not self._items:
                if self._done:
                    raise StopAsyncIteration
                ahead, self._ahead = self._ahead or self._read_ahead(), None
                items = await ahead
                if items is None:
                    self._done = True
                    raise StopAsyncIteration
                self._items.extend(items)
                self._ahead = self._read_ahead()  # the next page while this one is worked
            return self._items.popleft()

    def _read_ahead(self) -> asyncio.Future[Iterable[T] | None]:
        return asyncio.ensure_future(asyncio.to_thread(self._read))

    def _read(self) -> Iterable[T] | None:
        page = next(self._pages, None)
        if page is None:
            return None
        self.pages_read += 1
        return page if self._expand is None else self._expand(page)

    async def close(self) -> None:
        """Wait for the page being read ahead (if any); drop it."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            await asyncio.gather(ahead, return_exceptions=True)


async def drain(source: AsyncIterator[T] | Iterable[T], work: Callable[[T], Awaitable[Any]],
                concurrency: int) -> None:
    """Run `work` on every item of `source` with `concurrency` workers (never a task per item).

    Memory is bounded by the pool: each worker holds one item; the source holds what it read
    ahead (one page). On the first failure no new item is started, every item already started
    finishes (and is recorded, see `settle_all`), then the failure is raised: a retried step
    does the rest, with nothing paid for lost.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    items: AsyncIterator[T] = (source if isinstance(source, AsyncIterator)
                               else _aiter(iter(source)))
    failures: list[BaseException] = []

    async def worker() -> None:
        while not failures:
            try:
                item = await anext(items)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - a failed read: stop, raise below
                failures.append(exc)
                return
            try:
                await work(item)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - raised once the others settle
                failures.append(exc)

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        if isinstance(source, PagedSource):
            await source.close()
    if failures:
        raise failures[0]


async def _aiter(items: Iterator[T]) -> AsyncIterator[T]:
    for item in items:
        yield item
