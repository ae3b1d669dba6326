"""What every pipeline task receives and builds: the run reference, its store and step tracker.

Tasks receive a small `RunRef` (store URL + run id), not live objects, so that Prefect can retry
them, run them on another worker, and show their parameters in the UI. Each process keeps one
store per URL (`tracking.get_backend`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict

from goals import Goal, with_context
from settings import SiegeflowSettings, current_settings
from tracking import (
    Context,
    ResultRecord,
    SQLBackend,
    StepTracker,
    TrackingContext,
    get_backend,
    is_benign,
)

if TYPE_CHECKING:  # Prefect is imported when a task is defined, not with this module
    from prefect import Task

logger = logging.getLogger("siegeflow.tasks")

P = ParamSpec("P")
R = TypeVar("R")


def pipeline_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """The Prefect task settings every pipeline step shares.

    Retried with backoff and jitter (steps are idempotent against the store, so a retry only
    redoes what was not recorded), and never cached: a step calls models, and its inputs
    (a run reference) say nothing about what is already recorded. The retries given here are
    the defaults; flows call a step through `retried`, which applies the current ones.
    """
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    delays = list(SiegeflowSettings.model_fields["task_retry_delays"].default)
    return task(
        name=name,
        retries=len(delays),
        retry_delay_seconds=delays,
        retry_jitter_factor=0.5,
        cache_policy=NO_CACHE,
    )


def retried(step: Task[P, R]) -> Task[P, R]:
    """`step` (a `pipeline_task`) with the delays between retries that
    `SIEGEFLOW_TASK_RETRY_DELAYS` gives now (tests shorten them), read when the step runs."""
    delays = list(current_settings().task_retry_delays)
    return step.with_options(retries=len(delays), retry_delay_seconds=delays)


class RunRef(BaseModel):
    """Identifies one siegeflow run: where it is stored and its id."""

    model_config = ConfigDict(frozen=True)

    db_url: str
    run_id: str

    def backend(self) -> SQLBackend:
        return get_backend(self.db_url)

    def step_tracker(self) -> StepTracker:
        return StepTracker(TrackingContext(backend=self.backend(), run_id=self.run_id))


class GoalRow(BaseModel):
    """A goal as the tasks see it: the goal plus the result row that records it."""

    model_config = ConfigDict(frozen=True)

    result_id: str
    goal_id: str
    index: int
    text: str
    category: str | None = None
    target: str | None = None
    context: str | None = None
    benign: bool = False  # a benign control prompt: sent plain, judged for refusal only

    @classmethod
    def recorded(cls, *, result_id: str, goal_id: str | None, index: int, text: str,
                 category: str | None, metadata: Mapping[str, Any] | None) -> GoalRow:
        """The one place a GoalRow is built from what the store recorded for a goal (a result
        row or a tracking context): `target` and `context` travel in the goal's metadata."""
        meta = metadata or {}
        return cls(result_id=result_id, goal_id=goal_id or f"goal-{index}", index=index,
                   text=text, category=category, target=meta.get("target"),
                   context=meta.get("context"), benign=is_benign(meta))

    @classmethod
    def of_context(cls, ctx: Context) -> GoalRow:
        """From the tracker's context of a goal whose result row exists."""
        if ctx.result_id is None:
            raise ValueError(f"goal {ctx.goal_index} has no result row")
        return cls.recorded(result_id=ctx.result_id, goal_id=ctx.goal_id, index=ctx.goal_index,
                            text=ctx.goal, category=ctx.category, metadata=ctx.metadata)

    @classmethod
    def of_result(cls, result: ResultRecord) -> GoalRow:
        """From a stored `ResultRecord`."""
        return cls.recorded(result_id=result.id, goal_id=result.goal_id, index=result.goal_index,
                            text=result.goal, category=result.category,
                            metadata=result.goal_metadata)

    @property
    def request(self) -> str:
        """The goal as the target is asked it (with its context): see `Goal.request`."""
        return with_context(self.text, self.context)

    def to_goal(self) -> Goal:
        return Goal(
            id=self.goal_id, index=self.index, text=self.text,
            category=self.category, target=self.target, context=self.context,
        )


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """What a pipeline step hands the next: the run's spend so far and whether the budget ran
    out, plus the step's own tallies (`counts`: the same figures its step trace records)."""

    spent_usd: float
    budget_exhausted: bool
    requested: int = 0
    judgments: int = 0
    counts: Mapping[str, float] = field(default_factory=dict)


def artifact_key(run_id: str, what: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    safe = "".join(ch if ch.isalnum() else "-" for ch in run_id.lower())
    return f"siegeflow-{what}-{safe}"[:100]
