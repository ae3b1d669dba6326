"""``TrackingCoordinator``: the single tracking entry point of an attack (spec 000).

It owns a ``StepTracker`` (pipeline steps, run status) and a ``Tracker`` (goals), shares one
failure counter and one event publisher between them, and makes finalization crash-safe.
Choices where the spec is silent (users rely on them):

* ``create`` marks the run RUNNING if it was PENDING. ``goals`` may be strings, ``goals.Goal``
  objects or dicts (``text``/``goal``, ``id``/``goal_id``, ``index``, ``category``); a goal's
  own ``index`` wins over ``goal_index_start + position``.
* Rows are matched to goals by ``result_id``, then ``goal_index``, then ``goal_id``, and only
  then by text; a text shared by several goals resolves to the lowest index (so give rows a
  ``goal_index``). ``get_goal_context_by_goal`` follows the same rule.
* ``finalize_all_goals`` decides each goal with ``tracking.success`` (the rule ``get_summary``
  uses for the ASR) and never changes a goal that is already final.
* ``finalize_on_error`` turns every NOT_EVALUATED goal into ERROR_TEST_FRAMEWORK (a crash is
  not a defended attack, so it must not lower the ASR) and the run into FAILED, unless the run
  is already terminal. Calling it twice, or after ``finalize_pipeline``, changes nothing.
* ``finalize_pipeline`` sets COMPLETED (FAILED when ``success_check(results)`` is false) only
  if the run is not already terminal; goals still NOT_EVALUATED at that point are finalized
  as ERROR_TEST_FRAMEWORK ("not finalized") so a COMPLETED run never has pending goals.
* Every finalizer flushes the trace writer first, so readers see everything.
* Events (``event_bus``): goal_initialized, goal_finalized, step_started, step_finished,
  run_finalized (payload: run_id, status, summary).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tracking.categories import CategoryClassifier
from tracking.context import Context, GoalSpec, TrackingContext
from tracking.enums import EvaluationStatusEnum, StatusEnum
from tracking.guard import DEFAULT_LOGGER_NAME, EventPublisher, TrackingErrors
from tracking.rows import PipelineRow, ResultUpdate
from tracking.step import StepTracker
from tracking.success import GoalScorer, Scorer, decide_goal
from tracking.summary import build_summary, format_summary
from tracking.tracker import Tracker

if TYPE_CHECKING:
    from tracking.store import SQLBackend

_OPEN = (StatusEnum.PENDING, StatusEnum.RUNNING)


def _bound(
    scorer: Scorer | None, pairs: Sequence[tuple[PipelineRow, PipelineRow | Mapping[str, Any]]]
) -> GoalScorer | None:
    """The spec's ``scorer(goal_rows)`` bound to one goal's rows, as dicts."""
    if scorer is None:
        return None
    given = [g.as_dict() if isinstance(g, PipelineRow) else g if isinstance(g, dict) else dict(g)
             for _, g in pairs]
    return lambda: bool(scorer(given))


class TrackingCoordinator:
    """Unified tracking for one attack run: steps, goals, crash-safe finalization, summary."""

    def __init__(
        self,
        step_tracker: StepTracker,
        goal_tracker: Tracker | None,
        logger: logging.Logger | None = None,
        run_start_time: float | None = None,
    ) -> None:
        self.step_tracker = step_tracker
        self.goal_tracker = goal_tracker
        self.logger = logger or step_tracker.logger
        self.run_start_time = run_start_time if run_start_time is not None else time.perf_counter()
        self.context: TrackingContext = step_tracker.context
        self.errors: TrackingErrors = self.context.errors
        self._goal_rows: dict[int, tuple[dict[str, int], float]] = {}  # latest rows per goal
        self._unmatched_rows = 0

    # -- construction --------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        backend: SQLBackend | None,
        run_id: str | None,
        logger: logging.Logger | None = None,
        attack_type: str = "unknown",
        category_classifier_config: dict[str, Any] | None = None,
        goals: list[Any] | None = None,
        initial_metadata: dict[str, Any] | None = None,
        goal_index_start: int = 0,
        run_start_time: float | None = None,
        event_bus: Any | None = None,
    ) -> TrackingCoordinator:
        """Build a coordinator (``backend=None`` or ``run_id=None`` disables writing)."""
        logger = logger or logging.getLogger(DEFAULT_LOGGER_NAME)
        errors = TrackingErrors(logger)
        events = EventPublisher(event_bus, errors)
        enabled = backend is not None and run_id is not None
        context = TrackingContext(
            backend=backend if enabled else None,
            run_id=run_id,
            attack_type=attack_type,
            logger=logger,
            errors=errors,
            events=events,
        )
        goal_tracker = Tracker(
            backend if enabled else None,
            run_id,
            logger=logger,
            errors=errors,
            events=events,
            classifier=CategoryClassifier.from_config(category_classifier_config),
        )
        coordinator = cls(StepTracker(context), goal_tracker, logger, run_start_time)
        coordinator.step_tracker.update_run_status(StatusEnum.RUNNING, only_if_status_in=_OPEN)
        if goals:
            coordinator.initialize_goals(goals, initial_metadata, goal_index_start)
        return coordinator

    @classmethod
    def create_disabled(cls, logger: logging.Logger | None = None) -> TrackingCoordinator:
        """A coordinator that writes nothing (goals, steps and summary still work in memory)."""
        return cls.create(None, None, logger=logger)

    @property
    def is_enabled(self) -> bool:
        return self.context.is_enabled

    @property
    def has_goal_tracking(self) -> bool:
        return self.goal_tracker is not None and self.goal_tracker.is_enabled

    @property
    def run_id(self) -> str | None:
        return self.context.run_id

    # -- goals ---------------------------------------------------------------------------

    def initialize_goals(
        self,
        goals: list[Any],
        initial_metadata: dict[str, Any] | None = None,
        goal_index_start: int = 0,
    ) -> None:
        """Create result rows for all goals upfront (strings or structured goals)."""
        tracker = self._tracker()
        specs = []
        for position, goal in enumerate(goals):
            spec = GoalSpec.from_any(goal)
            if spec.index is None:
                spec = GoalSpec(
                    text=spec.text,
                    index=goal_index_start + position,
                    goal_id=spec.goal_id,
                    category=spec.category,
                    metadata=spec.metadata,
                )
            specs.append(spec)
        tracker.create_goal_results(specs, initial_metadata)

    def initialize_goals_from_pipeline_data(
        self, pipeline_data: list[dict[str, Any]], initial_metadata: dict[str, Any] | None = None
    ) -> None:
        """Create results only for goals present in the Generation output.

        Goals are distinguished by ``goal_index`` (else ``goal_id``, else text); rows without
        an index get the next free indices in order of appearance.
        """
        tracker = self._tracker()
        seen: dict[tuple[str, Any], GoalSpec] = {}
        for row in pipeline_data or []:
            parsed = GoalSpec.from_any(row)  # (a row's "metadata" is the prompt's, not the goal's)
            spec = GoalSpec(
                text=parsed.text,
                index=parsed.index,
                goal_id=parsed.goal_id,
                category=parsed.category,
            )
            key = (
                ("index", spec.index)
                if spec.index is not None
                else (("id", spec.goal_id) if spec.goal_id else ("text", spec.text))
            )
            seen.setdefault(key, spec)
        used = {c.goal_index for c in tracker.contexts} | {
            s.index for s in seen.values() if s.index is not None
        }
        next_index = max(used, default=-1) + 1
        specs = []
        for spec in seen.values():
            if spec.index is None:
                existing = tracker.get_context_by_goal_id(spec.goal_id) if spec.goal_id else None
                if existing is None and not spec.goal_id:
                    matches = tracker.get_contexts_by_goal(spec.text)
                    existing = matches[0] if matches else None
                if existing is not None:
                    continue
                spec = GoalSpec(
                    text=spec.text,
                    index=next_index,
                    goal_id=spec.goal_id,
                    category=spec.category,
                    metadata=spec.metadata,
                )
                next_index += 1
            specs.append(spec)
        tracker.create_goal_results(specs, initial_metadata)

    def get_goal_context(self, goal_index: int) -> Context | None:
        return self.goal_tracker.get_context(goal_index) if self.goal_tracker else None

    def get_goal_context_by_goal(self, goal: str) -> Context | None:
        """Context of the goal with this text; for a duplicated text, the lowest goal index.

        Use ``get_goal_context(index)`` or ``goal_tracker.get_contexts_by_goal`` for the others.
        """
        matches = self.goal_tracker.get_contexts_by_goal(goal) if self.goal_tracker else []
        return matches[0] if matches else None

    def enrich_with_result_ids(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Set ``result_id`` on each row whose goal is known (rows are matched as documented)."""
        if self.goal_tracker is None:
            return data
        for row in data:
            ctx = self.goal_tracker.resolve(row)
            if ctx is not None and ctx.result_id is not None:
                row["result_id"] = ctx.result_id
        return data

    # -- finalization --------------------------------------------------------------------

    def finalize_all_goals(
        self,
        results: Sequence[PipelineRow | Mapping[str, Any]] | None,
        scorer: Scorer | None = None,
        success_threshold: float = 0.5,
        include_evaluation_trace: bool = True,
    ) -> None:
        """Decide and store every goal's status from the pipeline rows (already-final goals
        are left as they are); see ``tracking.success`` for the rule.

        Rows may be spec-000 dicts or ``PipelineRow``s; a custom ``scorer`` is handed each
        goal's rows as dicts (the caller's own dicts when it gave dicts)."""
        tracker = self._tracker()
        grouped: dict[int, list[tuple[PipelineRow, PipelineRow | Mapping[str, Any]]]] = {
            c.goal_index: [] for c in tracker.contexts
        }
        unmatched = _group_by_goal(tracker, results or [], grouped)
        if unmatched:
            self.logger.warning("finalize_all_goals: %d row(s) match no tracked goal", unmatched)
        self._unmatched_rows = unmatched
        decisions: list[tuple[Context, ResultUpdate]] = []
        for ctx in tracker.contexts:
            counts = self._decide(ctx, grouped.get(ctx.goal_index, []), scorer,
                                  success_threshold, decisions)
            if counts is not None:
                self._goal_rows[ctx.goal_index] = counts
        self._store_decisions(tracker, decisions, include_evaluation_trace)

    def finalize_goal_groups(
        self,
        groups: Iterable[tuple[str | None, Sequence[PipelineRow | Mapping[str, Any]]]],
        scorer: Scorer | None = None,
        success_threshold: float = 0.5,
        include_evaluation_trace: bool = True,
    ) -> None:
        """``finalize_all_goals`` fed one goal at a time: ``groups`` yields (result id, that
        goal's rows) and each goal is decided, by the same code, as soon as its group arrives,
        so only one goal's rows are held (a run of a million attempts, issue 23). Every goal's
        rows must come in one group; goals that get none are decided as having no rows."""
        tracker = self._tracker()
        decided: dict[int, list[tuple[Context, ResultUpdate]]] = {}
        counted: dict[int, tuple[dict[str, int], float]] = {}
        unmatched = 0
        for _, group in groups:
            grouped: dict[int, list[tuple[PipelineRow, PipelineRow | Mapping[str, Any]]]] = {}
            unmatched += _group_by_goal(tracker, group, grouped)
            for index, pairs in grouped.items():
                if index in decided:
                    raise ValueError(f"goal {index}: its rows came in more than one group")
                self._decide_counted(tracker, index, pairs, scorer, success_threshold,
                                     decided, counted)
            del group, grouped  # this goal's rows go before the next goal's are read
        if unmatched:
            self.logger.warning("finalize_goal_groups: %d row(s) match no tracked goal", unmatched)
        self._unmatched_rows = unmatched
        decisions: list[tuple[Context, ResultUpdate]] = []
        for ctx in tracker.contexts:  # in the contexts' order, as finalize_all_goals does
            if ctx.goal_index not in decided:
                self._decide_counted(tracker, ctx.goal_index, [], scorer, success_threshold,
                                     decided, counted)
            decisions += decided[ctx.goal_index]
            if ctx.goal_index in counted:
                self._goal_rows[ctx.goal_index] = counted[ctx.goal_index]
        self._store_decisions(tracker, decisions, include_evaluation_trace)

    def _decide_counted(
        self, tracker: Tracker, index: int,
        pairs: Sequence[tuple[PipelineRow, PipelineRow | Mapping[str, Any]]],
        scorer: Scorer | None, threshold: float,
        decided: dict[int, list[tuple[Context, ResultUpdate]]],
        counted: dict[int, tuple[dict[str, int], float]],
    ) -> None:
        """One goal of ``finalize_goal_groups``: decided now, its row counts kept apart."""
        ctx = tracker.get_context(index)
        decided[index] = []
        if ctx is None:
            return
        counts = self._decide(ctx, pairs, scorer, threshold, decided[index])
        if counts is not None:
            counted[index] = counts

    def _decide(
        self, ctx: Context, pairs: Sequence[tuple[PipelineRow, PipelineRow | Mapping[str, Any]]],
        scorer: Scorer | None, threshold: float, decisions: list[tuple[Context, ResultUpdate]],
    ) -> tuple[dict[str, int], float] | None:
        """The one decision of a goal from its rows (both finalizers): its status added to
        ``decisions`` unless it is already final; returns its row counts and cost for the
        summary (None: an already-final goal without rows)."""
        rows = [row for row, _ in pairs]
        if ctx.is_finalized:
            if not rows:
                return None
            verdict = decide_goal(rows, threshold, None)  # its rows still count for cost
            return verdict.row_counts, verdict.metrics["cost_usd"]
        verdict = decide_goal(rows, threshold, _bound(scorer, pairs))
        decisions.append((ctx, ResultUpdate(
            result_id=ctx.result_id or "",
            evaluation_status=verdict.status,
            evaluation_notes=verdict.notes,
            metrics=verdict.metrics,
        )))
        return verdict.row_counts, verdict.metrics["cost_usd"]

    def _store_decisions(self, tracker: Tracker, decisions: list[tuple[Context, ResultUpdate]],
                         include_evaluation_trace: bool) -> None:
        changed = tracker.finalize_goals(decisions)
        if include_evaluation_trace:
            for ctx in changed:
                tracker.add_trace(
                    ctx,
                    "Evaluation",
                    "EVALUATION",
                    {
                        "evaluation_status": ctx.evaluation_status.value,
                        "notes": ctx.evaluation_notes,
                        "metrics": ctx.metrics,
                    },
                )
        tracker.flush()

    def finalize_on_error(self, error_message: str = "Pipeline failed") -> None:
        """Crash-safe finalization: no goal stays NOT_EVALUATED and the run becomes FAILED
        (unless already terminal). Idempotent."""
        if self.goal_tracker is not None:
            self.goal_tracker.finalize_on_error(error_message)
            self.goal_tracker.flush()
        self._finish_run(StatusEnum.FAILED, error_message)

    def finalize_pipeline(
        self, results: Any, success_check: Callable[[Any], bool] | None = None
    ) -> None:
        """Mark the run COMPLETED (or FAILED if ``success_check(results)`` is false) unless it
        is already FAILED/CANCELLED/COMPLETED; store the summary."""
        ok = True if success_check is None else bool(success_check(results))
        if self.goal_tracker is not None:
            leftover = self.goal_tracker.finalize_on_error("goal not finalized before pipeline end")
            if leftover:
                self.logger.warning(
                    "finalize_pipeline: %d goal(s) were never finalized; marked %s",
                    len(leftover),
                    EvaluationStatusEnum.ERROR_TEST_FRAMEWORK.value,
                )
            self.goal_tracker.flush()
        self._finish_run(StatusEnum.COMPLETED if ok else StatusEnum.FAILED, None)

    @contextmanager
    def run_guard(self, error_message: str = "Pipeline failed") -> Iterator[TrackingCoordinator]:
        """``with coordinator.run_guard(): ...`` calls ``finalize_on_error`` on any exception."""
        try:
            yield self
        except BaseException as exc:
            self.finalize_on_error(f"{error_message}: {type(exc).__name__}: {exc}")
            raise

    def _finish_run(self, status: StatusEnum, error_message: str | None) -> None:
        ctx = self.context
        if ctx.run_status is not None and ctx.run_status.is_terminal:
            return  # already final: change nothing
        summary = self.get_summary()
        summary["status"] = status.value
        if error_message is not None:
            summary["error"] = error_message
        if ctx.is_enabled:
            changed = ctx.store_call(
                "update_run",
                "update_run",
                ctx.run_id,
                status=status,
                summary=summary,
                cost_usd=summary["cost_usd"],
                only_if_status_in=_OPEN,
            )
            if changed is False:  # another process finalized it: adopt the stored status
                run = ctx.store_call("get_run", "get_run", ctx.run_id)
                ctx.run_status = run.status if run is not None else status
            else:
                ctx.run_status = status
        else:
            ctx.run_status = status
        ctx.events.publish(
            "run_finalized",
            {
                "run_id": ctx.run_id,
                "status": ctx.run_status.value if ctx.run_status else None,
                "summary": summary,
            },
        )

    # -- reporting -----------------------------------------------------------------------

    def get_summary(self) -> dict[str, Any]:
        """Combined summary of steps and goals (see ``tracking.summary``)."""
        return build_summary(
            run_id=self.context.run_id,
            attack_type=self.context.attack_type,
            status=self.context.run_status,
            enabled=self.is_enabled,
            contexts=self.goal_tracker.contexts if self.goal_tracker else [],
            steps=self.step_tracker.steps,
            goal_rows=list(self._goal_rows.values()),
            unmatched_rows=self._unmatched_rows,
            duration_s=time.perf_counter() - self.run_start_time,
            tracking_errors=self._tracking_errors(),
        )

    def log_summary(self) -> None:
        self.logger.info("%s", format_summary(self.get_summary()))

    def _tracking_errors(self) -> dict[str, int]:
        counts = self.errors.counts
        if self.goal_tracker is not None and self.goal_tracker.errors is not self.errors:
            for kind, n in self.goal_tracker.errors.counts.items():
                counts[kind] = counts.get(kind, 0) + n
        return counts

    def _tracker(self) -> Tracker:
        if self.goal_tracker is None:
            self.goal_tracker = Tracker(
                self.context.backend,
                self.context.run_id,
                logger=self.logger,
                errors=self.errors,
                events=self.context.events,
            )
        return self.goal_tracker


def _group_by_goal(
    tracker: Tracker, rows: Iterable[PipelineRow | Mapping[str, Any]],
    grouped: dict[int, list[tuple[PipelineRow, PipelineRow | Mapping[str, Any]]]],
) -> int:
    """Add each row, with what the caller gave, to its goal's list in `grouped` (goals by id or
    index, never text); return how many rows match no tracked goal."""
    unmatched = 0
    for given in rows:
        row = PipelineRow.of(given)
        ctx = tracker.resolve(row)
        if ctx is None:
            unmatched += 1
            continue
        grouped.setdefault(ctx.goal_index, []).append((row, given))
    return unmatched
