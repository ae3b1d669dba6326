"""``Tracker``: per-goal result tracking (one result row per goal, ordered traces per goal).

Decisions a user of the spec relies on:

* Goals are identified by ``goal_index`` (unique in a run) and optionally ``goal_id``; the
  text is data. Two identical goal strings are two results. Text lookup
  (``get_contexts_by_goal``) returns every match; the single-result form used by the spec's
  ``get_goal_context_by_goal`` returns the lowest-index match.
* Initialising a goal index twice with the same text returns the existing context
  (idempotent, also across processes: the store returns the existing row, with its status);
  the same index with a different text is a programming error (``ValueError``).
* Traces are queued (``SQLBackend.enqueue_trace``) and numbered per goal at enqueue time, so
  concurrent coroutines and threads never lose or reorder a goal's sequence.
* A final status is final: ``finalize_goal`` on a finalized goal changes nothing, in memory
  and (compare-and-set) in the store.
* Without a backend (or run id) everything works in memory (summary, ASR); nothing is written.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tracking.categories import CategoryClassifier
from tracking.context import Context, GoalSpec
from tracking.enums import EvaluationStatusEnum
from tracking.guard import DEFAULT_LOGGER_NAME, EventPublisher, TrackingErrors
from tracking.rows import NewResult, PipelineRow, ResultUpdate

if TYPE_CHECKING:
    from tracking.store import SQLBackend


class Tracker:
    """Owns the per-goal ``Context`` objects of one run and writes their rows and traces."""

    def __init__(
        self,
        backend: SQLBackend | None,
        run_id: str | None,
        *,
        logger: logging.Logger | None = None,
        errors: TrackingErrors | None = None,
        events: EventPublisher | None = None,
        classifier: CategoryClassifier | None = None,
    ) -> None:
        self.backend = backend
        self.run_id = run_id
        self.logger = logger or logging.getLogger(DEFAULT_LOGGER_NAME)
        self.errors = errors or TrackingErrors(self.logger)
        self.events = events or EventPublisher(None, self.errors)
        self.classifier = classifier
        self._lock = threading.Lock()
        self._by_index: dict[int, Context] = {}
        self._by_result: dict[str, Context] = {}
        self._by_text: dict[str, list[Context]] = {}  # kept sorted by goal index
        self._by_goal_id: dict[str, list[Context]] = {}

    @property
    def is_enabled(self) -> bool:
        return self.backend is not None and self.run_id is not None

    @property
    def contexts(self) -> list[Context]:
        """All goal contexts, by goal index."""
        with self._lock:
            return [self._by_index[i] for i in sorted(self._by_index)]

    # -- goals ---------------------------------------------------------------------------

    def create_goal_result(
        self,
        goal: str,
        goal_index: int,
        *,
        goal_id: str | None = None,
        category: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Context:
        """Create (or find) the result row of one goal and return its context."""
        spec = GoalSpec(text=goal, index=goal_index, goal_id=goal_id, category=category)
        return self.create_goal_results([spec], metadata)[0]

    def create_goal_results(
        self, goals: Sequence[GoalSpec], metadata: dict[str, Any] | None = None
    ) -> list[Context]:
        """Create result rows for many goals in one store call; every spec needs an index."""
        metadata = dict(metadata or {})
        new: dict[int, NewResult] = {}
        indices: list[int] = []
        with self._lock:
            for spec in goals:
                if spec.index is None:
                    raise ValueError(f"goal {spec.text[:60]!r} has no index")
                indices.append(spec.index)
                known = self._by_index.get(spec.index)
                known_text = (
                    known.goal if known else (new[spec.index].goal if spec.index in new else None)
                )
                if known_text is not None:
                    if known_text != spec.text:
                        raise ValueError(
                            f"goal index {spec.index} is already used by a different goal"
                        )
                    continue
                category = spec.category or (
                    self.classifier.classify(spec.text) if self.classifier else None
                )
                merged = {**metadata, **dict(spec.metadata or {})}
                new[spec.index] = NewResult(
                    goal=spec.text,
                    goal_index=spec.index,
                    goal_id=spec.goal_id,
                    category=category,
                    metadata=merged or None,
                )
        rows = list(new.values())
        records = self._store_results(rows)
        created: list[Context] = []
        with self._lock:
            for row, record in zip(rows, records, strict=True):
                if row.goal_index in self._by_index:  # a racing caller registered it meanwhile
                    continue
                ctx = Context(
                    run_id=self.run_id,
                    result_id=record.id if record is not None else None,
                    goal=row.goal,
                    goal_index=row.goal_index,
                    goal_id=row.goal_id,
                    category=row.category,
                    metadata=dict(row.metadata or {}),
                )
                if record is not None and record.evaluation_status.is_final:
                    ctx.evaluation_status = record.evaluation_status  # a resumed run
                    ctx.evaluation_notes = record.evaluation_notes
                    ctx.metrics = dict(record.metrics or {})
                self._register(ctx)
                created.append(ctx)
            out = [self._by_index[index] for index in indices]
        for ctx in created:
            self.events.publish("goal_initialized", _event(ctx))
        return out

    def _register(self, ctx: Context) -> None:
        """Index a new context (caller holds the lock)."""
        self._by_index[ctx.goal_index] = ctx
        if ctx.result_id is not None:
            self._by_result[ctx.result_id] = ctx
        for index, key in ((self._by_text, ctx.goal), (self._by_goal_id, ctx.goal_id)):
            if key is not None:
                bisect.insort(index.setdefault(key, []), ctx, key=_by_goal_index)

    def _store(self, kind: str, method: str, *args: Any, default: Any = None, **kwargs: Any) -> Any:
        """Call ``backend.<method>`` with graceful degradation; ``default`` when disabled."""
        if self.backend is None or self.run_id is None:
            return default
        return self.errors.call(
            kind, getattr(self.backend, method), *args, default=default, **kwargs
        )

    def _store_results(self, rows: list[NewResult]) -> list[Any]:
        records = (
            self._store("create_results", "create_results", self.run_id, rows) if rows else None
        )
        return list(records) if records is not None else [None] * len(rows)

    def get_context(self, goal_index: int) -> Context | None:
        with self._lock:
            return self._by_index.get(goal_index)

    def get_context_by_result_id(self, result_id: str) -> Context | None:
        with self._lock:
            return self._by_result.get(result_id)

    def get_context_by_goal_id(self, goal_id: str) -> Context | None:
        """First context (lowest index) with this goal id."""
        with self._lock:
            matches = self._by_goal_id.get(goal_id)
            return matches[0] if matches else None

    def get_contexts_by_goal(self, goal: str) -> list[Context]:
        """Every context whose text is exactly ``goal``, by index (duplicates are distinct)."""
        with self._lock:
            return list(self._by_text.get(goal, ()))

    def resolve(self, row: PipelineRow | Mapping[str, Any]) -> Context | None:
        """The context a pipeline row belongs to: by result_id, goal_index, goal_id, then text."""
        if isinstance(row, PipelineRow):
            return self._resolve(row.result_id, row.goal_index, row.goal_id, row.goal)
        return self._resolve(row.get("result_id"), row.get("goal_index"), row.get("goal_id"),
                             row.get("goal"))

    def _resolve(self, result_id: Any, index: Any, goal_id: Any, goal: Any) -> Context | None:
        if result_id is not None and (ctx := self.get_context_by_result_id(str(result_id))):
            return ctx
        if index is not None and (ctx := self.get_context(int(index))):
            return ctx
        if goal_id is not None and (ctx := self.get_context_by_goal_id(str(goal_id))):
            return ctx
        if isinstance(goal, str):
            matches = self.get_contexts_by_goal(goal)
            return matches[0] if matches else None
        return None

    # -- traces --------------------------------------------------------------------------

    def add_trace(
        self,
        target: Context | str,
        step_name: str,
        step_type: str,
        content: Any = None,
    ) -> int | None:
        """Queue a trace for a goal (its context or result id); returns its sequence number.

        Returns None when nothing is written (tracking disabled, goal without a result row,
        or a store failure, which is counted).
        """
        ctx = target if isinstance(target, Context) else self.get_context_by_result_id(target)
        result_id = ctx.result_id if ctx is not None else target  # (or a result of another tracker)
        if not isinstance(result_id, str):
            return None
        sequence: int | None = self._store(
            "trace",
            "enqueue_trace",
            run_id=self.run_id,
            result_id=result_id,
            step_name=step_name,
            step_type=step_type,
            content=content,
        )
        if ctx is None:
            return sequence
        if sequence is not None:
            with ctx.lock:
                ctx.trace_count += 1
                ctx.last_sequence = (
                    sequence if ctx.last_sequence is None else max(ctx.last_sequence, sequence)
                )
        return sequence

    def flush(self) -> None:
        """Make every queued trace visible; lost rows are counted as ``trace_write``."""
        self._store("flush", "flush", self.run_id)

    # -- finalization --------------------------------------------------------------------

    def finalize_goal(
        self,
        target: Context | str,
        evaluation_status: EvaluationStatusEnum,
        evaluation_notes: str | None = None,
        metrics: dict[str, Any] | None = None,
        agent_specific_data: dict[str, Any] | None = None,
    ) -> bool:
        """Give one goal its final status; False (and nothing changes) if it was already final."""
        ctx = target if isinstance(target, Context) else self.get_context_by_result_id(target)
        if ctx is None:
            return False
        update = ResultUpdate(
            result_id=ctx.result_id or "",
            evaluation_status=evaluation_status,
            evaluation_notes=evaluation_notes,
            metrics=metrics,
            agent_specific_data=agent_specific_data,
        )
        return bool(self.finalize_goals([(ctx, update)]))

    def finalize_goals(self, decisions: Sequence[tuple[Context, ResultUpdate]]) -> list[Context]:
        """Finalize many goals with one store transaction; returns the contexts changed."""
        changed: list[Context] = []
        updates: list[ResultUpdate] = []
        for ctx, update in decisions:
            status = EvaluationStatusEnum(update.evaluation_status)
            if not status.is_final:
                raise ValueError("finalize needs a final evaluation status")
            with ctx.lock:
                if ctx.is_finalized:
                    continue
                ctx.evaluation_status = status
                ctx.evaluation_notes = update.evaluation_notes
                ctx.metrics = dict(update.metrics or {})
            changed.append(ctx)
            if ctx.result_id is not None:
                updates.append(
                    ResultUpdate(
                        result_id=ctx.result_id,
                        evaluation_status=status,
                        evaluation_notes=update.evaluation_notes,
                        metrics=update.metrics,
                        agent_specific_data=update.agent_specific_data,
                    )
                )
        if updates:
            self._store("update_results", "update_results", updates)
        for ctx in changed:
            self.events.publish(
                "goal_finalized",
                {
                    **_event(ctx),
                    "evaluation_status": ctx.evaluation_status.value,
                },
            )
        return changed

    def finalize_on_error(self, error_message: str) -> list[Context]:
        """Every goal still NOT_EVALUATED becomes ERROR_TEST_FRAMEWORK with the message."""
        pending = [c for c in self.contexts if not c.is_finalized]
        return self.finalize_goals(
            [
                (
                    ctx,
                    ResultUpdate(
                        result_id=ctx.result_id or "",
                        evaluation_status=EvaluationStatusEnum.ERROR_TEST_FRAMEWORK,
                        evaluation_notes=error_message,
                        metrics={"finalized_on_error": True},
                    ),
                )
                for ctx in pending
            ]
        )


def _by_goal_index(ctx: Context) -> int:
    return ctx.goal_index


def _event(ctx: Context) -> dict[str, Any]:
    return {
        "run_id": ctx.run_id,
        "result_id": ctx.result_id,
        "goal_index": ctx.goal_index,
        "goal_id": ctx.goal_id,
        "category": ctx.category,
    }
