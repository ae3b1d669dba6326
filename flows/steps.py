"""The steps of an attack run, shared by the attack flow and its shards.

A technique that streams (Best-of-N: `streaming = True`) replaces Generation and Completions with
one step that samples, completes and judges as answers arrive (`tasks.bon`); Completions and
Evaluation still follow, and only do what that step left undone (a resumed run's leftovers).
A benign control set (`GoalRow.benign`) is sent plain alongside and judged for refusal only
(`tasks.benign`), whatever the technique.
"""

from __future__ import annotations

from typing import Any

from attacks import get_technique
from attacks.spec import AttackSpec
from judges.spec import JudgePanelSpec
from targets import TargetConfig
from tasks.benign import over_refusal
from tasks.bon import best_of_n
from tasks.completions import completions
from tasks.context import GoalRow, RunRef, StepResult
from tasks.evaluation import evaluation
from tasks.generation import generation
from tracking import PipelineRow


def is_streaming(attack: AttackSpec) -> bool:
    return bool(getattr(get_technique(attack.name), "streaming", False))


async def run_steps(
    ref: RunRef, target: TargetConfig, attack: AttackSpec, judges: JudgePanelSpec,
    goals: list[GoalRow], *, concurrency: int, budget_usd: float | None, spent_usd: float,
    result_ids: list[str] | None = None,
) -> StepResult:
    """Run the steps on `goals` (`result_ids`: restrict Completions/Evaluation to a shard's goals);
    return requests made, judgments, spend and whether the budget ran out."""
    attacked = [g for g in goals if not g.benign]
    benign = [g for g in goals if g.benign]
    if benign:  # the control set: plain prompts, sent by Completions with the rest
        await generation(ref, AttackSpec(name="baseline"), benign, concurrency)
    sampled = StepResult(spent_usd=spent_usd, budget_exhausted=False)
    if is_streaming(attack):
        sampled = await best_of_n(ref, target, attack, judges, attacked, concurrency, budget_usd,
                                  spent_usd)
    elif attacked:
        await generation(ref, attack, attacked, concurrency)
    completed = await completions(ref, target, concurrency, budget_usd, sampled.spent_usd,
                                  result_ids=result_ids)
    judged = await evaluation(ref, attack, judges, concurrency, budget_usd,
                              completed.spent_usd, result_ids=result_ids)
    if benign:
        await over_refusal(ref, result_ids=result_ids)
    return StepResult(
        spent_usd=judged.spent_usd,
        budget_exhausted=(sampled.budget_exhausted or completed.budget_exhausted
                          or judged.budget_exhausted),
        requested=sampled.requested + completed.requested,
        judgments=judged.judgments,
    )


def bon_extra(attack: AttackSpec, rows: list[PipelineRow], threshold: float) -> dict[str, Any]:
    """The summary's `bon` block (ASR@k) for a Best-of-N run; nothing for other techniques."""
    if not is_streaming(attack):
        return {}
    from attacks import build_technique
    from reports.bon import bon_curve, curve_summary

    n = int(build_technique(attack.name, attack.options).config.n)
    return {"bon": curve_summary(bon_curve(rows, threshold, n))}
