"""Controller-side middleware: plain functions that wrap a `send`.

A `Send` is `async (event) -> response`; a `Middleware` turns one Send into another. The scope
filter answers out-of-scope events itself, so the optimizer never hears of them; the recorder
writes every settled event into the run's full trajectory (and thus into the scoped views).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from optimizers.domains import Scope
from optimizers.events import (
    ControllableNoInjection,
    ControllablePostCallEvent,
    ControllablePreCallEvent,
    Event,
    EventResponse,
    ObservableEvent,
)
from optimizers.trajectory import Trajectory

Send = Callable[[Event], Awaitable[EventResponse]]
Middleware = Callable[[Send], Send]


def compose(send: Send, *middleware: Middleware) -> Send:
    """`compose(send, a, b)` is `a(b(send))`: the first middleware sees each event first."""
    for wrap in reversed(middleware):
        send = wrap(send)
    return send


def scoped(scope: Scope) -> Middleware:
    """Only injectable controllable events and readable observations reach the optimizer.

    Controllable events outside the writable domains (or on read-only points) are answered
    ControllableNoInjection here; unreadable observations get a plain EventResponse. Readable
    but not writable points still show up in the optimizer's trajectory view.
    """

    def middleware(send: Send) -> Send:
        async def scoped_send(event: Event) -> EventResponse:
            if isinstance(event, ControllablePreCallEvent | ControllablePostCallEvent):
                if not scope.may_inject(event.controllable):
                    return ControllableNoInjection(event=event)
            elif isinstance(event, ObservableEvent) and not scope.may_read(event.observable.domain):
                return EventResponse(event=event)
            return await send(event)

        return scoped_send

    return middleware


def recording(current: Callable[[], Trajectory | None]) -> Middleware:
    """Record controllable/observable events with their responses in `current()`'s trajectory."""

    def middleware(send: Send) -> Send:
        async def recording_send(event: Event) -> EventResponse:
            response = await send(event)
            if isinstance(event, ControllablePreCallEvent | ControllablePostCallEvent | ObservableEvent):
                trajectory = current()
                if trajectory is not None:
                    trajectory.record(event, response)
            return response

        return recording_send

    return middleware
