"""Events the controller sends to the optimizer, and the responses it gets back.

All are frozen, keyword-only dataclasses: they cross threads, so nobody may mutate them after
sending. Events compare by identity (`eq=False`): two identical tool outputs in one run are still
two different events, and a response must answer *its* event.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optimizers.domains import Controllable, Observable

if TYPE_CHECKING:
    from optimizers.trajectory import ReadableTrajectory


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """The controller's verdict on a finished run, carried by RunEndEvent and kept in the trajectory."""

    success: bool | None
    score: float | None = None
    feedback: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, eq=False)
class Event:
    """Base of every event; `timestamp` is wall-clock seconds at creation (controller side)."""

    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True, kw_only=True, eq=False)
class RunStartEvent(Event):
    """A run begins. `trajectory` is the optimizer's (scoped) live view of that run."""

    trajectory: ReadableTrajectory


@dataclass(frozen=True, kw_only=True, eq=False)
class ControllablePreCallEvent(Event):
    """The target is about to use `controllable`; `request` is what it would use unmodified."""

    controllable: Controllable
    request: Any


@dataclass(frozen=True, kw_only=True, eq=False)
class ControllablePostCallEvent(Event):
    """A controllable point produced `response` for `request` (e.g. a tool returned)."""

    controllable: Controllable
    request: Any
    response: Any


@dataclass(frozen=True, kw_only=True, eq=False)
class ObservableEvent(Event):
    """Something the optimizer may see but not change happened."""

    observable: Observable
    value: Any


@dataclass(frozen=True, kw_only=True, eq=False)
class RunEndEvent(Event):
    """The run is over and evaluated. Also persisted to the run's trajectory."""

    evaluation: Evaluation | Any


@dataclass(frozen=True, kw_only=True)
class EventResponse:
    """Acknowledges `event` without any action."""

    event: Event


@dataclass(frozen=True, kw_only=True)
class ControllableInjection(EventResponse):
    """Replace the controllable's value with `value`. `rationale`: why, in the attacker's own
    words (PAIR's `improvement`), kept in the trace so a report can show the reasoning."""

    controllable: Controllable
    value: Any
    rationale: str | None = None


@dataclass(frozen=True, kw_only=True)
class ControllableNoInjection(EventResponse):
    """Leave the controllable untouched. `controllable` defaults to the event's."""

    controllable: Controllable | None = None

    def __post_init__(self) -> None:
        if self.controllable is None:
            object.__setattr__(self, "controllable", getattr(self.event, "controllable", None))


@dataclass(frozen=True, kw_only=True)
class RunEndResponse(EventResponse):
    """`done=True`: the optimizer is finished (goal reached, budget gone); no more runs."""

    done: bool = False


_SPECIFIC = (ControllableInjection, ControllableNoInjection, RunEndResponse)
_CONTROLLABLE_ANSWERS = (ControllableInjection, ControllableNoInjection, EventResponse)
# Which response kinds answer which event kind. A plain EventResponse to a controllable event
# means "no injection"; RunEndEvent needs the done flag, so only RunEndResponse answers it.
_ALLOWED: dict[type[Event], tuple[type[EventResponse], ...]] = {
    RunStartEvent: (EventResponse,),
    ControllablePreCallEvent: _CONTROLLABLE_ANSWERS,
    ControllablePostCallEvent: _CONTROLLABLE_ANSWERS,
    ObservableEvent: (EventResponse,),
    RunEndEvent: (RunEndResponse,),
    Event: (EventResponse,),
}


def _kind(response: EventResponse) -> type[EventResponse]:
    kind = type(response)
    if kind in _SPECIFIC or kind is EventResponse:
        return kind
    return next((cls for cls in _SPECIFIC if isinstance(response, cls)), EventResponse)


def _allowed(event: Event) -> tuple[type[EventResponse], ...]:
    allowed = _ALLOWED.get(type(event))
    if allowed is None:  # a subclass of a known event: answered like its parent
        allowed = next(_ALLOWED[cls] for cls in type(event).__mro__ if cls in _ALLOWED)
    return allowed


def response_problem(event: Event, response: object) -> str | None:
    """Why `response` cannot answer `event`, or None when it can."""
    if not isinstance(response, EventResponse):
        return f"expected an EventResponse, got {type(response).__name__}"
    if response.event is not event:
        return f"{type(response).__name__}.event is not the event it answers"
    allowed = _allowed(event)
    kind = _kind(response)
    if kind not in allowed:
        names = " or ".join(cls.__name__ for cls in allowed)
        return f"{type(event).__name__} must be answered with {names}, not {kind.__name__}"
    if isinstance(response, ControllableInjection | ControllableNoInjection):
        expected = getattr(event, "controllable", None)
        if response.controllable != expected:
            return (
                f"{type(response).__name__} targets controllable {response.controllable!r}, "
                f"but the event is about {expected!r}"
            )
    return None
