"""Tracking contexts: ``TrackingContext`` (per run/step, spec 001) and ``Context`` (per goal).

``GoalSpec`` normalises the goals callers hand us: plain strings, ``goals.Goal`` objects, or
dicts. Duck-typed on purpose (``tracking`` imports nothing else from siegeflow): the text is
``text`` or ``goal``, the stable id ``id`` or ``goal_id``, plus optional ``index``/
``goal_index``, ``category`` and ``metadata``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracking.enums import EvaluationStatusEnum, StatusEnum
from tracking.guard import DEFAULT_LOGGER_NAME, EventPublisher, TrackingErrors

if TYPE_CHECKING:
    from tracking.store import SQLBackend


@dataclass(kw_only=True)
class TrackingContext:
    """What a ``StepTracker`` needs: where to write (``backend`` + ``run_id``) and how to degrade.

    ``backend=None`` or ``run_id=None`` disables writing; everything else still works in
    memory (step timings, summary). ``metadata`` holds step metadata and progress waiting to
    be written with the next step trace.
    """

    backend: SQLBackend | None
    run_id: str | None
    parent_result_id: str | None = None
    attack_type: str = "unknown"
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger(DEFAULT_LOGGER_NAME))
    # None means "make one" (with this context's logger); never None after __init__.
    errors: TrackingErrors = None  # type: ignore[assignment]  # set in __post_init__
    events: EventPublisher = None  # type: ignore[assignment]  # set in __post_init__
    metadata: dict[str, Any] = field(default_factory=dict)
    run_status: StatusEnum | None = None

    def __post_init__(self) -> None:
        if self.errors is None:
            self.errors = TrackingErrors(self.logger)
        if self.events is None:
            self.events = EventPublisher(None, self.errors)

    @property
    def is_enabled(self) -> bool:
        return self.backend is not None and self.run_id is not None

    def store_call(
        self, kind: str, method: str, *args: Any, default: Any = None, **kwargs: Any
    ) -> Any:
        """Call ``backend.<method>`` with graceful degradation; ``default`` when disabled."""
        if self.backend is None or self.run_id is None:
            return default
        return self.errors.call(
            kind, getattr(self.backend, method), *args, default=default, **kwargs
        )

    @classmethod
    def disabled(cls, logger: logging.Logger | None = None) -> TrackingContext:
        return cls(
            backend=None, run_id=None, logger=logger or logging.getLogger(DEFAULT_LOGGER_NAME)
        )


@dataclass(kw_only=True, eq=False)
class Context:
    """Tracking state of one goal. Identity is ``goal_index`` (and ``goal_id``), never ``goal``.

    ``result_id`` is None when tracking is disabled or the result row could not be created
    (then traces for this goal are skipped; the failure was counted once).
    """

    run_id: str | None
    result_id: str | None
    goal: str
    goal_index: int
    goal_id: str | None = None
    category: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    evaluation_status: EvaluationStatusEnum = EvaluationStatusEnum.NOT_EVALUATED
    evaluation_notes: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    trace_count: int = 0
    last_sequence: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_finalized(self) -> bool:
        return self.evaluation_status.is_final


@dataclass(frozen=True, kw_only=True)
class GoalSpec:
    """A goal as the trackers need it; build with ``GoalSpec.from_any``."""

    text: str
    index: int | None = None
    goal_id: str | None = None
    category: str | None = None
    metadata: Mapping[str, Any] | None = None

    @classmethod
    def from_any(cls, goal: Any) -> GoalSpec:
        if isinstance(goal, GoalSpec):
            return goal
        if isinstance(goal, str):
            return cls(text=goal)
        get: Callable[[str], Any] = (
            goal.get if isinstance(goal, Mapping) else lambda name: getattr(goal, name, None)
        )
        text = get("text")
        if text is None:
            text = get("goal")
        if not isinstance(text, str):
            raise TypeError(f"a goal needs a text (str, or 'text'/'goal' field): {goal!r}")
        index = get("index")
        if index is None:
            index = get("goal_index")
        goal_id = get("goal_id") or get("id")
        metadata = get("metadata")
        return cls(
            text=text,
            index=int(index) if index is not None else None,
            goal_id=str(goal_id) if goal_id is not None else None,
            category=get("category"),
            metadata=metadata if isinstance(metadata, Mapping) else None,
        )
