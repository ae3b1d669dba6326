"""Step 1 — Generation: turn each goal into attack prompts and record them as pending attempts.

Idempotent: goals that already have attempts recorded for this run (a retried task, a resumed
run) are skipped, so an attacker model is never asked twice for the same goal.
"""

from __future__ import annotations

import asyncio
import logging

from attacks import AttackPrompt, build_technique
from attacks.spec import AttackSpec
from tasks.budget import Budget
from tasks.buffer import WriteBuffer, settle_all
from tasks.context import GoalRow, RunRef, StepResult, pipeline_task
from tracking import NewAttempt

logger = logging.getLogger("siegeflow.tasks.generation")


def attempt_row(goal: GoalRow, prompt: AttackPrompt) -> NewAttempt:
    return NewAttempt(result_id=goal.result_id, prompt_hash=prompt.hash,
                      technique=prompt.technique, variant=prompt.variant,
                      prompt=prompt.wire, metadata=prompt.metadata)


def generation_cost(prompts: list[AttackPrompt]) -> float:
    """What an attacker model was paid to make these prompts (each carries its share)."""
    return sum(float(p.metadata.get("generation_cost_usd") or 0.0) for p in prompts)


@pipeline_task("generation")
async def generation(
    ref: RunRef, attack: AttackSpec, goals: list[GoalRow], concurrency: int = 16,
    budget_usd: float | None = None, spent_usd: float = 0.0,
) -> StepResult:
    """Record attack prompts for every goal that has none yet; return the attacker's spend.

    An attacker model's calls count against the run's budget like the target's: a goal is not
    started once it is exhausted (a resume generates it later, if the budget allows).
    """
    backend = ref.backend()
    tracker = ref.step_tracker()
    with tracker.track_step(
        "Generation",
        "STEP1_GENERATE",
        input_data={"goals": len(goals), "technique": attack.name},
        config=attack.model_dump(mode="json"),
    ):
        technique = build_technique(attack.name, attack.options)
        have = {a.result_id for a in backend.list_attempts(ref.run_id)}
        todo = [g for g in goals if g.result_id not in have]
        limit = asyncio.Semaphore(concurrency)
        budget = Budget(limit_usd=budget_usd, spent_usd=spent_usd)
        skipped = 0

        async def one(goal: GoalRow) -> int:
            nonlocal skipped
            async with limit:
                if budget.exhausted:
                    skipped += 1
                    return 0
                prompts = await technique.generate(goal.to_goal())
            budget.add(generation_cost(prompts))
            unique = {p.hash: p for p in prompts}  # a technique may repeat itself
            written.add(0, [attempt_row(goal, p) for p in unique.values()])
            return len(unique)

        # Off the loop and batched: a goal's prompts (an attacker model's paid output) are
        # stored as soon as the writer thread gets to them, not one transaction per goal here.
        written = WriteBuffer(lambda batches: backend.upsert_attempts(
            ref.run_id, [row for _, rows in batches for row in rows]))
        try:
            counts = await settle_all(one(g) for g in todo)
        finally:
            written.flush()
        attacker = budget.spent_usd - spent_usd
        empty = sum(1 for n in counts if n == 0) - skipped
        if empty:
            tracker.add_step_metadata("goals_without_prompts", empty)
        for key, value in {"goals_generated": len(todo) - skipped,
                           "goals_already_recorded": len(goals) - len(todo),
                           "prompts_generated": sum(counts), "attacker_cost_usd": attacker,
                           "skipped_budget": skipped}.items():
            tracker.add_step_metadata(key, value)
        return StepResult(spent_usd=budget.spent_usd, budget_exhausted=budget.exhausted,
                          counts={"prompts": sum(counts), "attacker_cost_usd": attacker})
