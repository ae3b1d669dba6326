"""Background batch writer: many producers enqueue rows, one thread bulk-inserts them.

Why: a commit per trace caps SQLite at a few thousand rows per second and makes every
producer wait on disk; one thread writing batches of up to ``batch_size`` rows per
transaction (flushed every ``interval_s`` or on ``flush()``) is an order of magnitude faster
and lets async producers enqueue without blocking the event loop.

Failure handling is the store's one "fail gracefully" path that cannot raise to a caller: a
batch that violates a constraint is retried row by row so only the offending rows are lost;
a batch that fails for any other reason (database unreachable) is lost whole. Every lost row
is recorded as a ``WriteFailure`` against its run and surfaced by ``flush()``, which raises
``TraceWriteError`` so the trackers count it (see ``tracking.guard``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tracking.redaction import redact_text

#: One queued row: (run_id it belongs to, driver parameters).
QueuedRow = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True, kw_only=True)
class WriteFailure:
    """Rows of one run lost by the background writer, with the (redacted) reason."""

    run_id: str
    count: int
    error_type: str
    message: str


class TraceWriteError(RuntimeError):
    """Raised by ``flush()`` when queued rows could not be written since the last flush."""

    def __init__(self, failures: Sequence[WriteFailure]) -> None:
        self.failures = list(failures)
        self.lost = sum(f.count for f in self.failures)
        first = self.failures[0]
        super().__init__(
            f"{self.lost} trace row(s) could not be written "
            f"(first: {first.error_type}: {first.message})"
        )


class BatchWriter:
    """Queue + one daemon thread calling ``write_batch(params)`` in batches."""

    def __init__(
        self,
        write_batch: Callable[[list[QueuedRow]], None],
        *,
        batch_size: int = 2000,
        interval_s: float = 0.05,
        name: str = "siegeflow-trace-writer",
    ) -> None:
        self._write_batch = write_batch
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._cond = threading.Condition(threading.Lock())
        self._buffer: list[QueuedRow] = []
        self._submitted = 0
        self._taken = 0
        self._processed = 0
        self._flush_target = 0
        self._closing = False
        self._failures: list[WriteFailure] = []
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Rows enqueued but not yet written (or failed)."""
        return self._submitted - self._processed

    def submit(self, run_id: str, params: tuple[Any, ...]) -> None:
        """Enqueue one row; cheap, never touches the database."""
        with self._cond:
            if self._closing:
                raise RuntimeError("the trace writer is closed")
            self._buffer.append((run_id, params))
            self._submitted += 1
            if len(self._buffer) == 1 or len(self._buffer) >= self._batch_size:
                self._cond.notify_all()

    def wait(self, timeout_s: float | None = 60.0) -> bool:
        """Write everything enqueued before this call; False if the timeout expired."""
        with self._cond:
            target = self._submitted
            if self._processed >= target:
                return True
            self._flush_target = max(self._flush_target, target)
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._processed >= target, timeout_s)

    def take_failures(self, run_id: str | None = None) -> list[WriteFailure]:
        """Remove and return recorded failures (of one run, or all)."""
        with self._cond:
            taken: list[WriteFailure] = []
            kept: list[WriteFailure] = []
            for failure in self._failures:
                (taken if run_id is None or failure.run_id == run_id else kept).append(failure)
            self._failures = kept
            return taken

    def close(self, timeout_s: float | None = 60.0) -> None:
        """Write what is queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    # -- writer thread -------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._write(batch)
            with self._cond:
                self._processed += len(batch)
                self._cond.notify_all()

    def _next_batch(self) -> list[QueuedRow] | None:
        with self._cond:
            while not self._buffer:
                if self._closing:
                    return None
                self._cond.wait()
            deadline = time.monotonic() + self._interval_s
            while (
                len(self._buffer) < self._batch_size
                and self._flush_target <= self._taken
                and not self._closing
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = self._buffer[: self._batch_size]
            del self._buffer[: self._batch_size]
            self._taken += len(batch)
            return batch

    def _write(self, batch: list[QueuedRow]) -> None:
        try:
            self._write_batch(batch)
        except sa.exc.IntegrityError:
            for row in batch:  # isolate the offending rows; the others are kept
                try:
                    self._write_batch([row])
                except Exception as exc:  # noqa: BLE001 - recorded, surfaced by flush()
                    self._record([row], exc)
        except Exception as exc:  # noqa: BLE001 - a writer thread must not die; see module doc
            self._record(batch, exc)

    def _record(self, rows: list[QueuedRow], exc: BaseException) -> None:
        counts: dict[str, int] = {}
        for run_id, _params in rows:
            counts[run_id] = counts.get(run_id, 0) + 1
        message = redact_text(str(exc).splitlines()[0] if str(exc) else "")[:500]
        with self._cond:
            for run_id, count in counts.items():
                self._failures.append(
                    WriteFailure(
                        run_id=run_id, count=count, error_type=type(exc).__name__, message=message
                    )
                )
