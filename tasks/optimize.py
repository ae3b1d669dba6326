"""The optimize flow's two tasks per goal: the optimizer actor and the target execution.

They share one `EventChannel`. `optimizer_actor` builds the optimizer and awaits
`run_optimizer_actor` (which poisons the channel if the optimizer fails). `target_execution`
drives an `OptimizerSession` (its actor runs elsewhere, so no `start()`): run after run it lets
the harness run the target, judges the outcome, sends the `Evaluation` in `RunEndEvent`, and
records the run as an attempt (+ judgments) and a trace on the goal's result. Neither task is
retried: a fresh optimizer on a half-consumed channel would be wrong.

An optimizer failure never raises out of `target_execution`: the goal's outcome says
`error_kind="optimizer_error"` (or `"optimizer_timeout"`) and the flow finalizes the goal as
ERROR_TEST_FRAMEWORK. An attacker budget running out is a stop reason, not an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from judges import JudgePanel, Verdict, combine, rule_score
from judges.spec import JudgePanelSpec
from optimizers import (
    Controllable,
    Evaluation,
    EventChannel,
    LLMClient,
    Observable,
    OptimizerFailedError,
    OptimizerSession,
    Scope,
    run_optimizer_actor,
)
from optimizers.library.guard import GuardedSession, OptimizerFault, classify_fault
from optimizers.library.harness import InvalidInjectionError, RunOutcome, TargetHarness
from optimizers.library.options import OptimizeOptions
from optimizers.library.serialize import evaluation_record, jsonable, trajectory_record
from optimizers.registry import build_optimizer
from targets.endpoint_config import CURRENT_GOAL
from targets.messages import ChatMessage, wire
from tasks.budget import Budget
from tasks.context import GoalRow, RunRef
from tracking.success import is_successful

logger = logging.getLogger("siegeflow.tasks.optimize")


@dataclass(frozen=True, kw_only=True)
class ActorJob:
    """What one goal's optimizer task needs (the attacker side of the goal's channel)."""

    label: str
    optimizer: str
    config: dict[str, Any]
    goal: str
    controllables: list[Controllable]
    observables: list[Observable]
    llm: LLMClient | None


@dataclass(frozen=True, kw_only=True)
class ActorOutcome:
    """What an optimizer task reports when it ends cleanly (its failures are exceptions)."""

    optimizer: str
    runs_seen: int


@dataclass(frozen=True, kw_only=True)
class TargetJob:
    """What one goal's target task needs (the target-and-judges side of the goal's channel)."""

    label: str
    ref: RunRef
    goal: GoalRow
    harness: TargetHarness
    scope: Scope
    judges: JudgePanelSpec
    options: OptimizeOptions
    technique: str
    llm: LLMClient | None
    budget: Budget
    first_run: int = 0


@dataclass(kw_only=True)
class GoalStats:
    """A goal's optimizer outcome, accumulated run by run: its OPTIMIZER_SUMMARY trace and the
    result's `agent_specific_data` are `as_dict()` of it."""

    result_id: str
    goal_index: int | None = None
    optimizer: str | None = None
    first_run: int = 0
    runs: int | None = 0
    successes: int = 0
    #: runs whose attack the attacker failed to write (nothing sent, or the goal as baseline)
    attacker_failures: int = 0
    first_success_run: int | None = None
    stop_reason: str | None = None
    error: str | None = None
    error_kind: str | None = None
    target_cost_usd: float = 0.0
    judge_cost_usd: float = 0.0
    attacker_cost_usd: float = 0.0
    elapsed_s: float | None = None
    optimizer_task_error: str | None = None

    @classmethod
    def failed(cls, result_id: str, exc: BaseException) -> GoalStats:
        """The outcome of a goal whose target task itself raised."""
        return cls(result_id=result_id, runs=None, stop_reason="target_error",
                   error_kind="target_error", error=f"{type(exc).__name__}: {exc}")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["optimizer_task_error"] is None:
            del data["optimizer_task_error"]
        return data


@task(name="optimizer-actor", task_run_name="optimizer-{job.label}", cache_policy=NO_CACHE,
      retries=0)
async def optimizer_actor(channel: EventChannel, job: ActorJob) -> ActorOutcome:
    """One goal's optimizer, from initialize to teardown; raises what the optimizer raised."""
    instance = build_optimizer(job.optimizer, job.config)
    await run_optimizer_actor(
        instance,
        channel,
        goal=job.goal,
        controllables=job.controllables,
        observables=job.observables,
        llm_client=job.llm,
    )
    return ActorOutcome(optimizer=type(instance).__name__,
                        runs_seen=len(instance.past_trajectories))


def attempt_hash(index: int, messages: Sequence[ChatMessage | Mapping[str, Any]]) -> str:
    """Idempotency key of a run's attempt: the run index makes repeated prompts distinct (over
    the messages' stored OpenAI form, as it always was)."""
    text = json.dumps({"run": index, "messages": wire(messages)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fallback_reason(outcome: RunOutcome) -> str | None:
    """Why the goal was sent as baseline (the attacker failure the harness noted)."""
    for turn in outcome.details.get("turns") or ():
        if isinstance(turn, Mapping) and turn.get("attacker_failure"):
            return str(turn["attacker_failure"])
    return None


class _TimeUp(Exception):
    """The goal's time limit passed in the middle of a run."""


class GoalLoop:
    """Runs one goal until a stop condition; see the module docstring."""

    def __init__(self, channel: EventChannel, job: TargetJob) -> None:
        self.channel, self.ref, self.goal, self.harness = channel, job.ref, job.goal, job.harness
        self.judges, self.options, self.technique = job.judges, job.options, job.technique
        self.llm, self.budget, self.first_run = job.llm, job.budget, job.first_run
        self.session = OptimizerSession(
            channel=channel,
            goal=job.goal.request,
            controllables=job.harness.controllables,
            observables=job.harness.observables,
            scope=job.scope,
            send_timeout=job.options.send_timeout_s,
        )
        self.hooks = GuardedSession(self.session, job.harness)
        self.panel = None if job.harness.check_keys else JudgePanel.from_config(job.judges)
        self.backend = job.ref.backend()
        self._attacker_mark = 0.0
        self._started = time.monotonic()
        self.stats = GoalStats(result_id=job.goal.result_id, goal_index=job.goal.index,
                               optimizer=job.technique, first_run=job.first_run)

    def _attacker_delta(self) -> float:
        spent = self.llm.usage.cost_usd if self.llm is not None else 0.0
        delta, self._attacker_mark = spent - self._attacker_mark, spent
        return delta

    def _stop_reason(self) -> str | None:
        s = self.stats
        if self.session.done:
            return "optimizer_done"
        if self.options.stop_on_success and s.successes:
            return "success"
        if (s.runs or 0) >= self.options.max_runs:
            return "max_runs"
        if self.budget.exhausted:
            return "budget"
        if self.llm is not None and self.llm.budget_exhausted:
            return "attacker_budget"
        limit = self.options.time_limit_s
        if limit is not None and time.monotonic() - self._started >= limit:
            return "time_limit"
        return None

    async def run(self) -> GoalStats:
        self._started = started = time.monotonic()
        try:
            while (reason := self._stop_reason()) is None:
                await self._one_run(self.first_run + (self.stats.runs or 0))
            self.stats.stop_reason = reason
        except (OptimizerFault, InvalidInjectionError) as exc:
            self._fail(exc)
        except _TimeUp:
            self.stats.stop_reason = "time_limit"
            self._trace_interrupted("time_limit", "the goal's time limit passed during the run")
        finally:
            await self.session.shutdown(timeout=self.options.shutdown_timeout_s)
            leftover = self._attacker_delta()  # e.g. background work after the last run
            self.stats.attacker_cost_usd += leftover
            self.budget.add(leftover)
            self.stats.elapsed_s = round(time.monotonic() - started, 6)
            self.backend.enqueue_trace(
                run_id=self.ref.run_id,
                result_id=self.goal.result_id,
                step_name="Optimizer",
                step_type="OPTIMIZER_SUMMARY",
                content=jsonable(self.stats.as_dict()),
            )
        return self.stats

    def _fail(self, exc: OptimizerFault | InvalidInjectionError) -> None:
        reason: str
        kind: str | None
        cause: BaseException
        if isinstance(exc, InvalidInjectionError):
            reason, kind, cause = "optimizer_error", "optimizer_error", exc
        else:
            reason, kind, cause = classify_fault(exc)
        if kind == "optimizer_timeout" or isinstance(exc, InvalidInjectionError):
            self.channel.set_error(
                OptimizerFailedError(f"goal stopped: {type(cause).__name__}: {cause}")
            )
        self.stats.stop_reason, self.stats.error_kind = reason, kind
        self.stats.error = None if kind is None else f"{type(cause).__name__}: {cause}"
        if kind is not None:
            logger.warning("goal %s: optimizer failed: %s", self.goal.goal_id, self.stats.error)
        self._trace_interrupted(reason, self.stats.error or str(cause))

    def _trace_interrupted(self, reason: str, error: str) -> None:
        """The run a stop interrupted: kept as a trace (what happened so far), not an attempt."""
        trajectory = self.session.current_trajectory
        if trajectory is None:
            return
        index = self.first_run + (self.stats.runs or 0)
        self.backend.enqueue_trace(
            run_id=self.ref.run_id,
            result_id=self.goal.result_id,
            step_name=f"run-{index}",
            step_type="OPTIMIZER_RUN",
            content={
                "run": index,
                "interrupted": reason,
                "error": error,
                "trajectory": trajectory_record(trajectory),
            },
        )

    async def _within_time_limit(self) -> tuple[RunOutcome, list[Verdict], Evaluation]:
        """Run the target and judge it, cut off when the goal's time limit passes."""
        limit = self.options.time_limit_s
        if limit is None:
            return await self._target_and_judge()
        remaining = max(0.0, limit - (time.monotonic() - self._started))
        try:
            async with asyncio.timeout(remaining) as deadline:
                return await self._target_and_judge()
        except TimeoutError:
            if deadline.expired():
                raise _TimeUp from None
            raise

    async def _target_and_judge(self) -> tuple[RunOutcome, list[Verdict], Evaluation]:
        CURRENT_GOAL.set(self.goal.result_id)  # `{goal_id}` of an HTTP app target, as attack runs
        outcome = await self.harness.run(self.hooks, self.goal.to_goal())
        verdicts, evaluation = await self._judge(outcome)
        return outcome, verdicts, evaluation

    async def _judge(self, outcome: RunOutcome) -> tuple[list[Verdict], Evaluation]:
        rule, threshold = self.judges.rule, self.judges.success_threshold
        if outcome.attacker_failure is not None and outcome.error is not None:
            return [], Evaluation(success=None, feedback=outcome.error)
        if outcome.error is not None:
            return [], Evaluation(
                success=None, feedback=f"target error ({outcome.error_kind}): {outcome.error}"
            )
        if self.panel is None:
            verdicts = list(outcome.checks)
        else:
            verdicts = (
                await self.panel.evaluate(self.goal.request, outcome.prompt, outcome.response or "",
                                          goal_id=self.goal.goal_id)
            ).verdicts
        combined, score = combine(verdicts, rule), rule_score(verdicts, rule)
        success = None if combined is None else is_successful(combined, score, threshold)
        feedback = "; ".join(f"{v.judge}: {(v.error or v.raw or '')[:200]}" for v in verdicts)
        details = {
            "verdicts": {
                v.judge: {"success": v.success, "score": v.score, "error": v.error}
                for v in verdicts
            },
            "rule": rule,
        }
        return verdicts, Evaluation(
            success=success, score=score, feedback=feedback, details=details
        )

    async def _one_run(self, index: int) -> None:
        trajectory = await self.hooks.run_start()
        outcome, verdicts, evaluation = await self._within_time_limit()
        done = await self.hooks.run_end(evaluation)
        attacker = self._attacker_delta()
        judge_cost = sum(v.cost_usd for v in verdicts)
        s = self.stats
        s.runs = (s.runs or 0) + 1
        s.target_cost_usd += outcome.cost_usd
        s.judge_cost_usd += judge_cost
        s.attacker_cost_usd += attacker
        s.attacker_failures += outcome.attacker_failure is not None or outcome.baseline
        if evaluation.success:
            s.successes += 1
            s.first_success_run = s.first_success_run if s.first_success_run is not None else index
        self.budget.add(outcome.cost_usd + judge_cost + attacker)
        attempt_id = self._record(index, outcome, verdicts, attacker, done)
        self.backend.enqueue_trace(
            run_id=self.ref.run_id,
            result_id=self.goal.result_id,
            step_name=f"run-{index}",
            step_type="OPTIMIZER_RUN",
            content={
                "run": index,
                "optimizer": self.technique,
                "attempt_id": attempt_id,
                "trajectory": trajectory_record(trajectory),
                "outcome": {
                    "prompt": outcome.prompt,
                    "response": jsonable(outcome.response),
                    "error": outcome.error,
                    "error_kind": outcome.error_kind,
                    "details": jsonable(outcome.details),
                },
                "success": evaluation.success,
                "score": evaluation.score,
                "evaluation": evaluation_record(evaluation),
                "done": done,
                "cost_usd": {
                    "target": outcome.cost_usd,
                    "judges": judge_cost,
                    "attacker": attacker,
                },
            },
        )

    def _record(
        self, index: int, outcome: RunOutcome, verdicts: list[Verdict], attacker: float, done: bool
    ) -> int:
        """The run as an attempt (cost = target + attacker spend) with its judgments."""
        attempt_id = self.backend.upsert_attempts(
            self.ref.run_id,
            [
                {
                    "result_id": self.goal.result_id,
                    # the plain goal sent after an attacker failure is never the optimizer's
                    "technique": "baseline" if outcome.baseline else self.technique,
                    "variant": f"run-{index}",
                    "prompt": wire(outcome.messages),
                    "prompt_hash": attempt_hash(index, outcome.messages),
                    "metadata": {
                        "optimizer": self.technique,
                        "run": index,
                        "done": done,
                        "target_cost_usd": outcome.cost_usd,
                        "attacker_cost_usd": attacker,
                        **({"attacker_failure": outcome.attacker_failure}
                           if outcome.attacker_failure is not None else {}),
                        **({"fallback_for": self.technique,
                            "attacker_failure_reason": _fallback_reason(outcome)}
                           if outcome.baseline else {}),
                    },
                }
            ],
        )[0]
        self.backend.record_completion(
            attempt_id,
            response=outcome.response,
            error=outcome.error,
            error_kind=outcome.error_kind,
            cost_usd=outcome.cost_usd + attacker,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            latency_s=outcome.latency_s,
            attempts=outcome.attempts,
        )
        for verdict in verdicts:
            self.backend.record_verdict(attempt_id, verdict)
        return attempt_id


@task(name="target-execution", task_run_name="target-{job.label}", cache_policy=NO_CACHE,
      retries=0)
async def target_execution(channel: EventChannel, job: TargetJob) -> GoalStats:
    """Run the job's goal against the target until a stop condition; return its outcome."""
    loop = GoalLoop(channel, job)
    try:
        return await loop.run()
    except BaseException as exc:  # our own or the target's bug: stop the optimizer, then raise
        channel.set_error(
            OptimizerFailedError(f"the target side failed: {type(exc).__name__}: {exc}")
        )
        raise
