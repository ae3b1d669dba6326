"""Step 1 — Generation: turn each goal into attack prompts and record them as pending attempts.

Idempotent: goals that already have attempts recorded for this run (a retried task, a resumed
run) are skipped, so an attacker model is never asked twice for the same goal.
"""

from __future__ import annotations

import logging

from attacks import AttackPrompt, build_technique
from attacks.spec import AttackSpec
from tasks.budget import Budget
from tasks.buffer import WriteBuffer, drain
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
        have = backend.attempted_result_ids(ref.run_id)  # one row per goal, not per attempt
        todo = [g for g in goals if g.result_id not in have]
        budget = Budget(limit_usd=budget_usd, spent_usd=spent_usd)
        tally = {"skipped": 0, "prompts": 0, "empty": 0}

        async def one(goal: GoalRow) -> None:
            if budget.exhausted:
                tally["skipped"] += 1
                return
            prompts = await technique.generate(goal.to_goal())
            budget.add(generation_cost(prompts))
            unique = {p.hash: p for p in prompts}  # a technique may repeat itself
            tally["prompts"] += len(unique)
            tally["empty"] += not unique
            await written.put(0, [attempt_row(goal, p) for p in unique.values()])

        # Off the loop and batched: a goal's prompts (an attacker model's paid output) are
        # stored as soon as the writer thread gets to them, not one transaction per goal here.
        # `concurrency` workers, and the writer's bound, keep what waits in memory bounded.
        written = WriteBuffer(lambda batches: backend.upsert_attempts(
            ref.run_id, [row for _, rows in batches for row in rows]))
        try:
            await drain(todo, one, concurrency)
        finally:
            written.flush()
        skipped, prompts = tally["skipped"], tally["prompts"]
        attacker = budget.spent_usd - spent_usd
        empty = tally["empty"]
        if empty:
            tracker.add_step_metadata("goals_without_prompts", empty)
        for key, value in {"goals_generated": len(todo) - skipped,
                           "goals_already_recorded": len(goals) - len(todo),
                           "prompts_generated": prompts, "attacker_cost_usd": attacker,
                           "skipped_budget": skipped}.items():
            tracker.add_step_metadata(key, value)
        return StepResult(spent_usd=budget.spent_usd, budget_exhausted=budget.exhausted,
                          counts={"prompts": prompts, "attacker_cost_usd": attacker})
