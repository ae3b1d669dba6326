"""What happened in one run: the full controller-side record and the optimizer's scoped view.

`Trajectory` is owned by the controller. `FilteredTrajectory` is what the optimizer gets: the
trajectory *pushes* in-scope entries into it, so the view holds no reference back to the full
record (there is no attribute, closure or entry through which the optimizer could reach it).
This is an API boundary, not a sandbox: code in the same process can always walk the garbage
collector (and a pending envelope's reply future links to the sender's task). An untrusted
optimizer needs a process boundary, which this in-process channel deliberately does not offer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from optimizers.domains import Scope
from optimizers.events import (
    ControllableInjection,
    ControllablePostCallEvent,
    ControllablePreCallEvent,
    Event,
    EventResponse,
    ObservableEvent,
    RunEndEvent,
)

RecordableEvent = ControllablePreCallEvent | ControllablePostCallEvent | ObservableEvent


@dataclass(frozen=True, kw_only=True)
class TrajectoryEntry:
    """One event of the run and the response that settled it (None if it got none)."""

    event: Event
    response: EventResponse | None = None

    @property
    def injected(self) -> bool:
        return isinstance(self.response, ControllableInjection)

    @property
    def injected_value(self) -> Any:
        return self.response.value if isinstance(self.response, ControllableInjection) else None


@runtime_checkable
class ReadableTrajectory(Protocol):
    """Read-only access to a run. Every accessor returns a snapshot (safe across threads)."""

    @property
    def goal(self) -> str: ...

    @property
    def run_index(self) -> int: ...

    @property
    def entries(self) -> tuple[TrajectoryEntry, ...]: ...

    @property
    def end_event(self) -> RunEndEvent | None: ...

    @property
    def evaluation(self) -> Any: ...

    @property
    def finished(self) -> bool: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[TrajectoryEntry]: ...


class _Record:
    """Shared storage and read accessors of both trajectory kinds."""

    def __init__(self, *, goal: str, run_index: int) -> None:
        self._goal = goal
        self._run_index = run_index
        self._lock = threading.Lock()
        self._entries: list[TrajectoryEntry] = []
        self._end_event: RunEndEvent | None = None

    @property
    def goal(self) -> str:
        return self._goal

    @property
    def run_index(self) -> int:
        return self._run_index

    @property
    def entries(self) -> tuple[TrajectoryEntry, ...]:
        with self._lock:
            return tuple(self._entries)

    @property
    def end_event(self) -> RunEndEvent | None:
        return self._end_event

    @property
    def evaluation(self) -> Any:
        end = self._end_event
        return None if end is None else end.evaluation

    @property
    def finished(self) -> bool:
        return self._end_event is not None

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[TrajectoryEntry]:
        return iter(self.entries)

    def _append(self, entry: TrajectoryEntry) -> None:
        with self._lock:
            if self._end_event is not None:
                raise RuntimeError(f"run {self._run_index} is finished: cannot record more")
            self._entries.append(entry)

    def _finish(self, end_event: RunEndEvent) -> None:
        with self._lock:
            if self._end_event is not None:
                raise RuntimeError(f"run {self._run_index} is already finished")
            self._end_event = end_event


class FilteredTrajectory(_Record):
    """The optimizer's view of a run: only entries whose domain its scope may read.

    Filled by the owning `Trajectory`; holds its own copies of the entry list, never the trajectory.
    """

    def __init__(self, *, goal: str, run_index: int, scope: Scope) -> None:
        super().__init__(goal=goal, run_index=run_index)
        self._scope = scope

    @property
    def scope(self) -> Scope:
        return self._scope

    def __repr__(self) -> str:
        return f"FilteredTrajectory(run_index={self._run_index}, entries={len(self)}, finished={self.finished})"


def _domain_of(event: Event) -> str | None:
    if isinstance(event, ControllablePreCallEvent | ControllablePostCallEvent):
        return event.controllable.domain
    if isinstance(event, ObservableEvent):
        return event.observable.domain
    return None


class Trajectory(_Record):
    """The full record of one run, kept by the controller. Thread-safe.

    `record()` appends an event with its response; `finish()` persists the RunEndEvent. Both are
    forwarded to every view made by `view(scope)` when the scope may read the entry's domain
    (the RunEndEvent and its evaluation always reach the views: they are the optimizer's feedback).
    """

    def __init__(self, *, goal: str, run_index: int = 0) -> None:
        super().__init__(goal=goal, run_index=run_index)
        self._views: list[FilteredTrajectory] = []

    def view(self, scope: Scope) -> FilteredTrajectory:
        """A scoped view that receives what is already recorded and everything recorded later."""
        view = FilteredTrajectory(goal=self._goal, run_index=self._run_index, scope=scope)
        with self._lock:
            for entry in self._entries:
                if _visible(scope, entry.event):
                    view._entries.append(entry)
            if self._end_event is not None:
                view._end_event = self._end_event
            self._views.append(view)
        return view

    def record(self, event: RecordableEvent, response: EventResponse | None = None) -> TrajectoryEntry:
        if not isinstance(event, ControllablePreCallEvent | ControllablePostCallEvent | ObservableEvent):
            raise TypeError(f"only controllable/observable events are recorded, not {type(event).__name__}")
        entry = TrajectoryEntry(event=event, response=response)
        with self._lock:
            if self._end_event is not None:
                raise RuntimeError(f"run {self._run_index} is finished: cannot record more")
            self._entries.append(entry)
            views = [v for v in self._views if _visible(v.scope, event)]
        for view in views:
            view._append(entry)
        return entry

    def finish(self, end_event: RunEndEvent) -> None:
        self._finish(end_event)
        with self._lock:
            views = list(self._views)
        for view in views:
            view._finish(end_event)

    def __repr__(self) -> str:
        return f"Trajectory(run_index={self._run_index}, entries={len(self)}, finished={self.finished})"


def _visible(scope: Scope, event: Event) -> bool:
    domain = _domain_of(event)
    return domain is not None and scope.may_read(domain)
