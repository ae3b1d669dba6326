"""Step 1 — Generation: turn each goal into attack prompts and record them as pending attempts.

Idempotent: goals that already have attempts recorded for this run (a retried task, a resumed
run) are skipped, so an attacker model is never asked twice for the same goal.
"""

from __future__ import annotations

import asyncio
import logging

from attacks import AttackPrompt, build_technique
from attacks.spec import AttackSpec
from tasks.buffer import WriteBuffer, settle_all
from tasks.context import GoalRow, RunRef, pipeline_task
from tracking import NewAttempt

logger = logging.getLogger("siegeflow.tasks.generation")


def attempt_row(goal: GoalRow, prompt: AttackPrompt) -> NewAttempt:
    return NewAttempt(result_id=goal.result_id, prompt_hash=prompt.hash,
                      technique=prompt.technique, variant=prompt.variant,
                      prompt=prompt.messages, metadata=prompt.metadata)


@pipeline_task("generation")
async def generation(
    ref: RunRef, attack: AttackSpec, goals: list[GoalRow], concurrency: int = 16
) -> int:
    """Record attack prompts for every goal that has none yet; return the run's attempt count."""
    backend = ref.backend()
    tracker = ref.step_tracker()
    with tracker.track_step(
        "Generation",
        "STEP1_GENERATE",
        input_data={"goals": len(goals), "technique": attack.name},
        config=attack.model_dump(mode="json"),
    ):
        technique = build_technique(attack.name, attack.options)
        recorded = backend.list_attempts(ref.run_id)
        have = {a.result_id for a in recorded}
        todo = [g for g in goals if g.result_id not in have]
        limit = asyncio.Semaphore(concurrency)

        async def one(goal: GoalRow) -> int:
            async with limit:
                prompts = await technique.generate(goal.to_goal())
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
        empty = sum(1 for n in counts if n == 0)
        tracker.add_step_metadata("goals_generated", len(todo))
        tracker.add_step_metadata("goals_already_recorded", len(goals) - len(todo))
        tracker.add_step_metadata("prompts_generated", sum(counts))
        if empty:
            tracker.add_step_metadata("goals_without_prompts", empty)
        return len(recorded) + sum(counts)  # goals in `todo` had no attempt: all are new
