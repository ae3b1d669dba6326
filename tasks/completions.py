"""Step 2 — Completions: send every pending attack prompt to the target, concurrently.

One Prefect task for the whole step, with requests run by a fixed pool of `concurrency` asyncio
workers (`tasks.buffer.drain`) pulling pending attempts a page at a time: a Prefect task per
request would add 15-50 ms of orchestration to each call, and a coroutine per attempt would hold
a million of them at a million attempts. Idempotent: only attempts without a
recorded completion are sent, so a retried task or a resumed run never re-requests one.
Target failures (429/5xx/timeouts after `targets.chat`'s retries) are *recorded* on the attempt
as errors, never raised: they end up as ERROR_AGENT_RESPONSE, not as a verdict. An attempt the
attacker failed to write is never sent: its completion is recorded as `attacker_failure`.
"""

from __future__ import annotations

import logging
from typing import Any

from attacks.attacker_output import ATTACKER_FAILURE, is_attacker_failure
from targets import TargetConfig, chat
from targets.completion import Completion
from targets.endpoint_config import CURRENT_GOAL
from targets.messages import ChatMessage, SystemMessage, from_openai
from tasks.budget import Budget
from tasks.buffer import PagedSource, WriteBuffer, drain
from tasks.context import RunRef, StepResult, artifact_key, pipeline_task
from tasks.progress import StepProgress
from tracking.store_pipeline import AttemptFilter, GoalShard

logger = logging.getLogger("siegeflow.tasks.completions")


def _target_messages(target: TargetConfig, stored: list[dict[str, Any]]) -> list[ChatMessage]:
    """An attempt's stored prompt, typed; attack prompts carry no system message of their own:
    the target's comes first."""
    prompt = from_openai(stored)
    if target.system_prompt and not any(isinstance(m, SystemMessage) for m in prompt):
        return [SystemMessage(content=target.system_prompt), *prompt]
    return prompt


def _pending(shard: GoalShard | None) -> AttemptFilter:
    return AttemptFilter(pending=True, shard=shard)


@pipeline_task("completions")
async def completions(
    ref: RunRef,
    target: TargetConfig,
    concurrency: int = 16,
    budget_usd: float | None = None,
    spent_usd: float = 0.0,
    shard: GoalShard | None = None,
) -> StepResult:
    """Complete every pending attempt; return counts, errors, cost and whether the budget ran out.

    `shard` restricts the step to one shard's goals (a sharded run's child). Streamed:
    pending attempts are read a page at a time (by id, so attempts completed meanwhile are
    neither skipped nor sent twice) and sent by `concurrency` workers.
    """
    backend = ref.backend()
    tracker = ref.step_tracker()
    with tracker.track_step(
        "Completions",
        "STEP2_COMPLETE",
        input_data={"target": target.describe()},
        config={"concurrency": concurrency, "budget_usd": budget_usd},
    ):
        total = backend.count_attempts(ref.run_id, _pending(shard))
        budget = Budget(limit_usd=budget_usd, spent_usd=spent_usd)
        progress = StepProgress("Completions", artifact_key(ref.run_id, "completions"), total)
        await progress.start()
        stats = {"requested": 0, "errors": 0, "skipped_budget": 0, "attacker_failures": 0,
                 "cost_usd": 0.0}

        async def one(attempt: Any) -> None:
            if is_attacker_failure(attempt.meta):  # never sent: recorded as what it is
                stats["attacker_failures"] += 1
                await written.put(attempt.id, Completion(
                    error=f"attacker failure: {attempt.meta[ATTACKER_FAILURE]}",
                    error_kind=ATTACKER_FAILURE))  # type: ignore[arg-type]  # not a target error kind
            elif budget.exhausted:
                stats["skipped_budget"] += 1
            else:
                stats["requested"] += 1
                CURRENT_GOAL.set(attempt.result_id)  # `{goal_id}` of an HTTP app target
                result = await chat(target, _target_messages(target, attempt.prompt))
                budget.add(result.cost_usd)
                stats["cost_usd"] += result.cost_usd
                stats["errors"] += result.error is not None
                await written.put(attempt.id, result)
            await progress.advance()

        written = WriteBuffer(backend.record_completions)
        try:
            if total:  # else nothing to read (e.g. after a Best-of-N step)
                pages = backend.iter_attempts(ref.run_id, _pending(shard))
                await drain(PagedSource(pages), one, concurrency)
        finally:
            written.flush()
        await progress.finish()
        for key, value in stats.items():
            tracker.add_step_metadata(key, value)
        tracker.add_step_metadata("pending_at_start", total)
        return StepResult(spent_usd=budget.spent_usd, budget_exhausted=budget.exhausted,
                          requested=int(stats["requested"]), counts=stats)
