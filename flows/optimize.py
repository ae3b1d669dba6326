"""The optimize flow: an optimizer actor attacks each goal run after run, all recorded.

Per goal, two Prefect tasks share one `EventChannel`: `optimizer_actor` (the attacker) and
`target_execution` (runs the target harness, judges each run, records it). With
`wiring="gather"` (default) both are awaited together in the flow's event loop; with
`wiring="threads"` both are submitted to the flow's ThreadPoolTaskRunner and meet across
threads and loops. Goals run concurrently, `concurrency` pairs at a time.

A goal stops when the optimizer answers done, at its first success, at `max_runs`, when the
run's USD budget or the goal's attacker budget is spent, or past its time limit. An optimizer
crash ends only its goal (ERROR_TEST_FRAMEWORK, the exception in the notes).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
from dataclasses import dataclass
from typing import Any

from prefect import flow, runtime
from prefect.context import FlowRunContext
from prefect.futures import PrefectConcurrentFuture, PrefectFuture

from flows.config import GoalsSpec, JudgePanelSpec
from flows.hooks import RUN_FLOW_OPTIONS
from flows.logs import send_logs_to_runs
from flows.run_record import OpenedRun, finish_run, heartbeat, open_run
from flows.scratch import secure_worker_scratch
from optimizers import EventChannel
from optimizers.library.harness import HarnessSpec, TargetHarness, build_harness, scope_for
from optimizers.library.options import OptimizeOptions
from optimizers.registry import get_optimizer, needs_attacker, validate_options
from targets import TargetConfig
from tasks.budget import Budget
from tasks.context import GoalRow, artifact_key
from tasks.optimize import ActorJob, GoalStats, TargetJob, optimizer_actor, target_execution
from tasks.progress import StepProgress
from tracking import EvaluationStatusEnum, RunSummary, SQLBackend

logger = logging.getLogger("siegeflow.flows.optimize")


def resolve_options(
    optimizer: str, optimizer_options: dict[str, Any] | None, harness: HarnessSpec | None
) -> tuple[OptimizeOptions, dict[str, Any]]:
    """Split and validate the options; fail before anything is recorded."""
    options, own = OptimizeOptions.split(optimizer_options)
    if harness is not None:
        if "harness" in (optimizer_options or {}):
            raise ValueError(
                "give the harness either as the flow's `harness` or in optimizer_options, not both"
            )
        options = options.model_copy(update={"harness": harness})
    get_optimizer(optimizer)
    validate_options(optimizer, own)
    if options.attacker is None and needs_attacker(optimizer):
        raise ValueError(
            f"optimizer {optimizer!r} needs an attacker model: set optimizer_options.attacker "
            "= {model: ..., api_base: ..., api_key_env: ...}"
        )
    return options, own


def _label(goal: GoalRow) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in goal.goal_id)[:60]


def _thread_future(future: PrefectFuture[Any]) -> concurrent.futures.Future[Any]:
    """The thread's future of a task submitted to the flow's thread pool (the `threads` wiring
    runs on no other task runner)."""
    if not isinstance(future, PrefectConcurrentFuture):
        raise TypeError(f"the threads wiring needs a thread-pool task runner, got {future!r}")
    return future.wrapped_future


def _task_result(future: Any) -> Any:
    """A finished submitted task's result, or the exception it failed with (recorded per goal)."""
    try:
        return future.result(raise_on_failure=True)
    except Exception as exc:  # noqa: BLE001 - the caller records it on the goal and logs it
        return exc


@dataclass(frozen=True, kw_only=True)
class OptimizeRun:
    """What every goal of one optimize run shares."""

    optimizer: str
    own: dict[str, Any]
    options: OptimizeOptions
    target: TargetConfig
    judges: JudgePanelSpec
    opened: OpenedRun
    budget: Budget
    retry_errors: bool = False

    async def job(self, goal: GoalRow) -> GoalJob:
        """The goal's two task inputs, with a fresh harness and attacker client."""
        harness = build_harness(self.options.harness, self.target)
        cap = self.options.max_cost_usd
        if self.budget.limit_usd is not None:
            left = max(0.0, self.budget.limit_usd - self.budget.spent_usd)
            cap = left if cap is None else min(cap, left)
        attacker = self.options.attacker
        llm = attacker.client(cap, await attacker.block_key()) if attacker is not None else None
        ref = self.opened.ref
        first = (len(ref.backend().list_attempts(ref.run_id, result_id=goal.result_id))
                 if self.opened.resumed else 0)
        label = _label(goal)
        return GoalJob(
            goal=goal,
            actor=ActorJob(label=label, optimizer=self.optimizer, config=self.own,
                           goal=goal.text, controllables=list(harness.controllables),
                           observables=list(harness.observables), llm=llm),
            target=TargetJob(label=label, ref=ref, goal=goal, harness=harness,
                             scope=scope_for(self.options.harness, harness), judges=self.judges,
                             options=self.options, technique=self.optimizer, llm=llm,
                             budget=self.budget, first_run=first),
            grace_s=self.options.shutdown_timeout_s,
        )


@dataclass(frozen=True, kw_only=True)
class GoalJob:
    """One goal: its optimizer task and its target task, meeting on one `EventChannel`."""

    goal: GoalRow
    actor: ActorJob
    target: TargetJob
    grace_s: float

    async def run(self, wiring: str) -> GoalStats:
        channel = EventChannel()
        if wiring == "threads":
            optimizer_result, target_result = await self._threaded(channel)
        else:
            optimizer_result, target_result = await self._gathered(channel)
        return self._outcome(optimizer_result, target_result)

    async def _gathered(self, channel: EventChannel) -> tuple[Any, Any]:
        """Both tasks in this loop; an optimizer that does not stop in `grace_s` is cancelled."""
        actor = asyncio.ensure_future(optimizer_actor(channel, self.actor))

        async def target_then_reap() -> Any:
            try:
                return await target_execution(channel, self.target)
            finally:
                done, _ = await asyncio.wait({actor}, timeout=self.grace_s)
                if not done:
                    logger.warning("optimizer of %s did not stop within %.0fs: cancelled",
                                   self.actor.label, self.grace_s)
                    actor.cancel()

        results = await asyncio.gather(actor, target_then_reap(), return_exceptions=True)
        return results[0], results[1]  # each a result or the exception it raised

    async def _threaded(self, channel: EventChannel) -> tuple[Any, Any]:
        """Both tasks submitted to the flow's thread pool (own threads, own event loops)."""
        actor = optimizer_actor.submit(channel, self.actor)
        target = target_execution.submit(channel, self.target)
        await asyncio.wrap_future(_thread_future(target))
        target_result = _task_result(target)
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(_thread_future(actor))),
                                   self.grace_s)
        except TimeoutError:  # a thread cannot be cancelled: report it and let it run out
            logger.warning("optimizer of %s did not stop within %.0fs", self.actor.label,
                           self.grace_s)
            return TimeoutError(
                f"optimizer task still running {self.grace_s:.0f}s after the goal ended"
            ), target_result
        return _task_result(actor), target_result

    def _outcome(self, optimizer_result: Any, target_result: Any) -> GoalStats:
        if isinstance(target_result, BaseException):
            logger.error("goal %s: target task failed: %r", self.goal.goal_id, target_result)
            outcome = GoalStats.failed(self.goal.result_id, target_result)
        else:
            outcome = target_result
        if isinstance(optimizer_result, BaseException):
            outcome.optimizer_task_error = (
                f"{type(optimizer_result).__name__}: {optimizer_result}"
            )
        return outcome


def _pairs_allowed(concurrency: int, wiring: str) -> int:
    """Threads mode needs two workers per goal pair, or pairs would wait on each other."""
    if wiring != "threads":
        return concurrency
    context = FlowRunContext.get()
    workers = getattr(getattr(context, "task_runner", None), "_max_workers", None)
    if isinstance(workers, int) and workers < 2 * concurrency:
        if workers < 2:
            raise ValueError("wiring='threads' needs a task runner with at least 2 workers")
        logger.warning(
            "task runner has %d workers: running %d goal pairs at a time", workers, workers // 2
        )
        return workers // 2
    return concurrency


#: Stop reasons after which a resume leaves a goal alone; any other goal is attacked again.
FINISHED = frozenset({"optimizer_done", "success", "max_runs"})


def _finished_goals(backend: SQLBackend, run_id: str) -> set[str]:
    """Result ids whose latest recorded optimizer outcome is final. Read from the goals'
    OPTIMIZER_SUMMARY traces: append-only, unlike the result row a resume re-opens."""
    latest: dict[str, Any] = {}
    for trace in backend.list_traces(run_id=run_id):
        if trace.result_id is not None and trace.step_type == "OPTIMIZER_SUMMARY":
            latest[trace.result_id] = trace.content  # traces come in sequence order
    return {
        result_id
        for result_id, outcome in latest.items()
        if isinstance(outcome, dict)
        and outcome.get("stop_reason") in FINISHED
        and not outcome.get("error_kind")
    }


def _target_error_goals(backend: SQLBackend, run_id: str) -> set[str]:
    """Result ids whose every recorded run ended as a target error (an outage longer than the
    backoff): what `resume --retry-errors` attacks again. A goal with one answered run keeps its
    outcome: its optimizer saw the errors as feedback and went on."""
    errored: dict[str, bool] = {}
    for attempt in backend.list_attempts(run_id):
        failed = attempt.error is not None
        errored[attempt.result_id] = errored.get(attempt.result_id, True) and failed
    return {result_id for result_id, all_failed in errored.items() if all_failed}


def _finalize_unjudged(opened: OpenedRun, outcomes: list[GoalStats]) -> None:
    """Goals that crashed, or were never run, are errors whatever their earlier runs said."""
    tracker = opened.coordinator.goal_tracker
    assert tracker is not None
    for outcome in outcomes:
        if outcome.error_kind:
            notes = f"{outcome.error_kind}: {outcome.error}"
        elif outcome.runs == 0 and not outcome.first_run:
            notes = f"not attacked: stopped by {outcome.stop_reason} before the first run"
        else:
            continue
        tracker.finalize_goal(
            outcome.result_id,
            EvaluationStatusEnum.ERROR_TEST_FRAMEWORK,
            evaluation_notes=notes[:4000],
            metrics={"optimizer_outcome": outcome.as_dict()},
        )


async def _attack_goals(run: OptimizeRun, concurrency: int, budget_usd: float | None
                        ) -> list[GoalStats]:
    """Every goal not finished by an earlier attempt, `concurrency` pairs at a time."""
    opened, options = run.opened, run.options
    ref, coordinator = opened.ref, opened.coordinator
    finished = _finished_goals(ref.backend(), ref.run_id) if opened.resumed else set()
    if run.retry_errors:
        retried = finished & _target_error_goals(ref.backend(), ref.run_id)
        finished -= retried
        logger.info("retrying %d goal(s) whose runs all ended as target errors", len(retried))
    pending = [g for g in opened.goal_rows if g.result_id not in finished]
    limit = asyncio.Semaphore(_pairs_allowed(concurrency, options.wiring))
    progress = StepProgress("Optimization", artifact_key(ref.run_id, "optimization"), len(pending))

    async def one_goal(goal: GoalRow) -> GoalStats:
        async with limit:
            outcome = await (await run.job(goal)).run(options.wiring)
        await progress.advance()
        return outcome

    with coordinator.step_tracker.track_step(
        "Optimization", "OPTIMIZE",
        input_data={"goals": len(pending), "optimizer": run.optimizer,
                    "harness": options.harness.kind},
        config={"optimizer_options": {**run.own, **options.model_dump(mode="json")},
                "concurrency": concurrency, "budget_usd": budget_usd},
    ):
        await progress.start()
        outcomes = list(await asyncio.gather(*(one_goal(g) for g in pending)))
        await progress.finish()
        reasons = collections.Counter(str(o.stop_reason) for o in outcomes)
        coordinator.step_tracker.add_step_metadata("runs_total", _runs(outcomes))
        coordinator.step_tracker.add_step_metadata("stop_reasons", dict(reasons))
    return outcomes


def _runs(outcomes: list[GoalStats]) -> int:
    return sum(o.runs or 0 for o in outcomes)


@flow(
    name="siegeflow-optimize",
    description="Attack each goal with an optimizer actor, run after run; judge and record all.",
    **RUN_FLOW_OPTIONS,
)
async def optimize_flow(
    optimizer: str,
    target: TargetConfig,
    optimizer_options: dict[str, Any] | None = None,
    goals: GoalsSpec = GoalsSpec(),
    judges: JudgePanelSpec = JudgePanelSpec(),
    concurrency: int = 4,
    budget_usd: float | None = None,
    db_url: str | None = None,
    resume_run_id: str | None = None,
    harness: HarnessSpec | None = None,
    retry_errors: bool = False,
) -> RunSummary:
    """Run `optimizer` (a registered name or `module:Class`) against `target` on `goals`.

    `retry_errors` (with `resume_run_id`): goals whose every run ended as a target error are
    attacked again, their run numbers continuing, within the run's budget and rate limit."""
    send_logs_to_runs()
    secure_worker_scratch(target, optimizer_options, judges, harness)
    options, own = resolve_options(optimizer, optimizer_options, harness)
    probe = build_harness(options.harness, target)  # validates the harness before recording
    if options.attacker is not None:
        await options.attacker.block_key()  # a missing Secret block fails here, not per goal
    opened = open_run(
        kind="optimize", attack_type=optimizer, target=target, goals=goals,
        parameters={
            "target": target.model_dump(mode="json"), "optimizer": optimizer,
            "optimizer_options": {**own, **options.model_dump(mode="json", exclude_unset=False)},
            "judges": judges.model_dump(mode="json"), "goals": goals.model_dump(mode="json"),
            "concurrency": concurrency, "budget_usd": budget_usd,
        },
        db_url=db_url, resume_run_id=resume_run_id,
        prefect_flow_run_id=str(runtime.flow_run.id or ""), logger=logger,
    )
    run = OptimizeRun(optimizer=optimizer, own=own, options=options, target=target,
                      judges=judges, opened=opened, retry_errors=retry_errors and opened.resumed,
                      budget=Budget(limit_usd=budget_usd, spent_usd=opened.spent_usd))
    async with heartbeat(opened.ref):
        outcomes = await _attack_goals(run, concurrency, budget_usd)
        return await _finish(run, probe, outcomes)


async def _finish(run: OptimizeRun, probe: TargetHarness, outcomes: list[GoalStats]
                  ) -> RunSummary:
    """Errors first, each goal's optimizer outcome on its result, then the run's end."""
    _finalize_unjudged(run.opened, outcomes)
    backend = run.opened.ref.backend()
    for outcome in outcomes:
        backend.update_result(outcome.result_id,
                              agent_specific_data={"optimizer": run.optimizer, **outcome.as_dict()})
    reasons = collections.Counter(str(o.stop_reason) for o in outcomes)
    return await finish_run(
        run.opened.ref, run.opened.coordinator, run.judges,
        judge_keys=list(probe.check_keys) or None,
        stop_reason="budget" if reasons.get("budget") else "completed",
        spent_usd=run.budget.spent_usd,
        extra={
            "optimizer": run.optimizer,
            "harness": run.options.harness.kind,
            "runs_total": _runs(outcomes),
            "stop_reasons": dict(reasons),
            "attacker_cost_usd": sum(o.attacker_cost_usd or 0.0 for o in outcomes),
            "optimizer_errors": sum(1 for o in outcomes if o.error_kind),
        },
    )


__all__ = ["optimize_flow", "resolve_options"]
