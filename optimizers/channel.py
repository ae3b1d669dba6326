"""EventChannel: the one path between the controller and the optimizer actor.

Sender and receiver may live in different threads *and* different event loops (Prefect's
ThreadPoolTaskRunner runs each async task under its own `asyncio.run()` in its own thread), so
the channel is built on a `threading.Lock`-protected deque. Whoever waits parks on a future of
*its own* loop (or a `threading.Event` for the sync variants); the other side wakes it with
`loop.call_soon_threadsafe`, or directly when both sides share the thread.

Semantics (the spec is silent on these, they are ours):

* FIFO: events are received in the order their `send` calls enqueued them.
* `send(event, timeout=)` returns the response, or raises what `reject(exc)` delivered, or
  `ChannelClosedError` (closed), or `ChannelPoisonedError` (`set_error`). On timeout or
  cancellation the event is withdrawn if still queued; a late `respond` is then a silent no-op.
* `close()`: further `send` raises; receivers drain the queued events, then iteration stops
  (`receive()` raises `ChannelClosedError`). Events already delivered can still be answered.
* `set_error(exc)`: every pending (queued or delivered, unanswered) and future `send` raises
  `ChannelPoisonedError` with `__cause__ = exc`; queued events are dropped; receivers stop.
  The first error wins; later calls are no-ops.
* `respond` twice (or after `reject`) raises `EnvelopeAlreadyAnsweredError`. A response that
  does not answer the event is rejected: the sender gets `InvalidResponseError`, and so does
  the caller of `respond`.
* In-process only: the channel refuses to be pickled, so a process, Dask or Ray task runner
  fails loudly instead of giving each side its own copy and deadlocking.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from enum import Enum
from typing import Any

from optimizers.errors import (
    ChannelClosedError,
    ChannelError,
    ChannelPoisonedError,
    EnvelopeAlreadyAnsweredError,
    InvalidResponseError,
)
from optimizers.events import Event, EventResponse, response_problem

_NO_PICKLE = (
    "{} cannot be pickled: it is shared in-process between the controller and the optimizer "
    "threads. Run both sides in one process (Prefect's default ThreadPoolTaskRunner, with "
    "max_workers >= 2 and cache_policy=NO_CACHE on the tasks); process, Dask and Ray task "
    "runners are not supported for the optimizer/target pair."
)


class _State(Enum):
    PENDING = "pending"
    ANSWERED = "answered"
    REJECTED = "rejected"
    ABANDONED = "abandoned"  # the sender timed out or was cancelled
    POISONED = "poisoned"  # set_error settled it


def _settle_future(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the waiter was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _expire(future: asyncio.Future[Any], event: Event, timeout: float) -> None:
    if not future.done():
        future.set_exception(TimeoutError(f"no response to {type(event).__name__} within {timeout}s"))


class _Slot:
    """A one-shot wake-up target: a future of the waiter's loop, or a threading.Event (sync)."""

    __slots__ = ("_loop", "_thread", "future", "_flag", "value", "error")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop
        self._thread = threading.get_ident()
        self.future: asyncio.Future[Any] | None = loop.create_future() if loop else None
        self._flag: threading.Event | None = None if loop else threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def fire(self, value: Any = None, error: BaseException | None = None) -> bool:
        """Deliver from any thread. False when nobody can be woken (waiter gone)."""
        if self._flag is not None:
            self.value, self.error = value, error
            self._flag.set()
            return True
        assert self.future is not None and self._loop is not None
        if threading.get_ident() == self._thread:
            if self.future.done():
                return False
            _settle_future(self.future, value, error)
            return True
        try:
            self._loop.call_soon_threadsafe(_settle_future, self.future, value, error)
        except RuntimeError:  # the waiter's loop is closed: its coroutine is gone
            return False
        return True

    def wait_sync(self, timeout: float | None) -> bool:
        assert self._flag is not None
        return self._flag.wait(timeout)


class EventEnvelope:
    """One event in flight, plus the way back to its sender. `respond`/`reject` work from any thread."""

    __slots__ = ("event", "_channel", "_reply", "_state")

    def __init__(self, event: Event, channel: EventChannel, reply: _Slot) -> None:
        self.event = event
        self._channel = channel
        self._reply = reply
        self._state = _State.PENDING

    @property
    def answered(self) -> bool:
        return self._state is not _State.PENDING

    def respond(self, response: EventResponse) -> None:
        """Deliver `response` to the sender. An invalid response rejects the envelope and raises."""
        problem = response_problem(self.event, response)
        if problem is not None:
            self._settle(_State.REJECTED, None, InvalidResponseError(problem))
            raise InvalidResponseError(problem)
        self._settle(_State.ANSWERED, response, None)

    def reject(self, exc: BaseException) -> None:
        """Make the sender's `send` raise `exc` (non-Exception errors are wrapped in ChannelError)."""
        if not isinstance(exc, BaseException):
            raise TypeError(f"reject() needs an exception, got {type(exc).__name__}")
        if not isinstance(exc, Exception):  # e.g. CancelledError: must not cancel the sender
            wrapped = ChannelError(f"optimizer aborted while handling the event: {exc!r}")
            wrapped.__cause__ = exc
            exc = wrapped
        self._settle(_State.REJECTED, None, exc)

    def _settle(self, state: _State, value: Any, error: BaseException | None) -> None:
        with self._channel._lock:
            current = self._state
            if current in (_State.ANSWERED, _State.REJECTED):
                raise EnvelopeAlreadyAnsweredError(
                    f"{type(self.event).__name__} was already {current.value}"
                )
            if current is not _State.PENDING:  # sender gave up or channel poisoned: nobody waits
                return
            self._state = state
            self._channel._pending.discard(self)
        self._reply.fire(value, error)

    def _abandon(self) -> bool:
        """Withdraw on the sender side (timeout/cancel). True if the envelope was still pending."""
        channel = self._channel
        with channel._lock:
            if self._state is not _State.PENDING:
                return False
            self._state = _State.ABANDONED
            channel._pending.discard(self)
            try:
                channel._queue.remove(self)
            except ValueError:  # already handed to a receiver
                pass
        return True

    def __reduce__(self) -> Any:
        raise TypeError(_NO_PICKLE.format("EventEnvelope"))

    def __repr__(self) -> str:
        return f"EventEnvelope({type(self.event).__name__}, {self._state.value})"


class EventChannel:
    """Thread-safe, loop-agnostic request/response channel (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[EventEnvelope] = deque()
        self._waiters: deque[_Slot] = deque()
        self._pending: set[EventEnvelope] = set()
        self._closed = False
        self._error: BaseException | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def pending(self) -> int:
        """Events sent and not yet settled (queued or being handled)."""
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """No more sends; receivers drain what is queued, then stop. Idempotent."""
        with self._lock:
            self._closed = True
            waiters = list(self._waiters)
            self._waiters.clear()
        for waiter in waiters:
            waiter.fire()

    def set_error(self, exc: BaseException) -> None:
        """Poison the channel: all pending and future sends raise ChannelPoisonedError from `exc`."""
        with self._lock:
            if self._error is not None:
                return
            self._error = exc
            self._closed = True
            doomed = list(self._pending)
            for envelope in doomed:
                envelope._state = _State.POISONED
            self._pending.clear()
            self._queue.clear()
            waiters = list(self._waiters)
            self._waiters.clear()
        for envelope in doomed:
            envelope._reply.fire(None, self._poison())
        for waiter in waiters:
            waiter.fire()

    def _poison(self) -> ChannelPoisonedError:
        error = ChannelPoisonedError(f"channel poisoned: {self._error!r}")
        error.__cause__ = self._error
        return error

    # -- sending -------------------------------------------------------------------------------
    def _enqueue(self, event: Event, reply: _Slot) -> EventEnvelope:
        if not isinstance(event, Event):
            raise TypeError(f"only Event instances travel on the channel, got {type(event).__name__}")
        envelope = EventEnvelope(event, self, reply)
        with self._lock:
            if self._error is not None:
                raise self._poison()
            if self._closed:
                raise ChannelClosedError("send() on a closed channel")
            self._queue.append(envelope)
            self._pending.add(envelope)
            self._wake_one_locked()
        return envelope

    async def send(self, event: Event, *, timeout: float | None = None) -> EventResponse:
        """Send `event` and wait for its response, from any thread and any event loop."""
        loop = asyncio.get_running_loop()
        reply = _Slot(loop)
        envelope = self._enqueue(event, reply)
        future = reply.future
        assert future is not None
        # A timer on the reply future is much cheaper per event than asyncio.timeout().
        timer = None if timeout is None else loop.call_later(timeout, _expire, future, event, timeout)
        try:
            return await future
        except BaseException:  # timeout or cancellation: withdraw (no-op if already settled)
            envelope._abandon()
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def send_sync(self, event: Event, *, timeout: float | None = None) -> EventResponse:
        """Blocking `send` for plain threads. Refused inside a running event loop (it would block it)."""
        _refuse_inside_loop("send_sync")
        reply = _Slot(None)
        envelope = self._enqueue(event, reply)
        if not reply.wait_sync(timeout) and envelope._abandon():
            raise TimeoutError(f"no response to {type(event).__name__} within {timeout}s")
        reply.wait_sync(None)  # settled concurrently with the timeout: the value is on its way
        if reply.error is not None:
            raise reply.error
        return reply.value

    # -- receiving -----------------------------------------------------------------------------
    def _take_locked(self) -> EventEnvelope | None:
        if self._error is not None:
            raise self._poison()
        if self._queue:
            return self._queue.popleft()
        if self._closed:
            raise ChannelClosedError("channel closed and drained")
        return None

    def _wake_one_locked(self) -> None:
        while self._waiters:
            if self._waiters.popleft().fire():
                return

    def _forget_waiter(self, waiter: _Slot) -> None:
        """A waiter left (timeout/cancel). If a sender already woke it, pass the wake-up on."""
        with self._lock:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                if self._queue:
                    self._wake_one_locked()

    async def receive(self, *, timeout: float | None = None) -> EventEnvelope:
        """Next envelope, from any thread and loop. Raises ChannelClosedError when closed and drained."""
        if timeout is None:
            return await self._receive(asyncio.get_running_loop())
        async with asyncio.timeout(timeout):
            return await self._receive(asyncio.get_running_loop())

    async def _receive(self, loop: asyncio.AbstractEventLoop) -> EventEnvelope:
        while True:
            with self._lock:
                envelope = self._take_locked()
                if envelope is not None:
                    return envelope
                waiter = _Slot(loop)
                self._waiters.append(waiter)
            assert waiter.future is not None
            try:
                await waiter.future
            except BaseException:
                self._forget_waiter(waiter)
                raise

    def receive_sync(self, *, timeout: float | None = None) -> EventEnvelope:
        """Blocking `receive` for plain threads."""
        _refuse_inside_loop("receive_sync")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                envelope = self._take_locked()
                if envelope is not None:
                    return envelope
                waiter = _Slot(None)
                self._waiters.append(waiter)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not waiter.wait_sync(left):
                self._forget_waiter(waiter)
                raise TimeoutError(f"no event within {timeout}s")

    def __aiter__(self) -> EventChannel:
        return self

    async def __anext__(self) -> EventEnvelope:
        try:
            return await self.receive()
        except ChannelClosedError:  # closed-and-drained or poisoned: the consumer just stops
            raise StopAsyncIteration from None

    def __reduce__(self) -> Any:
        raise TypeError(_NO_PICKLE.format("EventChannel"))

    def __repr__(self) -> str:
        state = "poisoned" if self._error is not None else "closed" if self._closed else "open"
        return f"EventChannel({state}, queued={len(self._queue)}, pending={len(self._pending)})"


def _refuse_inside_loop(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"{name}() would block the running event loop; await the async variant")
