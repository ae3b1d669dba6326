"""The steps of an attack run, shared by the attack flow and its shards.

A technique that streams (Best-of-N: `streaming = True`) replaces Generation and Completions with
one step that samples, completes and judges as answers arrive (`tasks.bon`); Completions and
Evaluation still follow, and only do what that step left undone (a resumed run's leftovers).
A suite with a streaming member is split (`split_streaming`): its other members go through
Generation, the streaming member through its own step, so Best-of-N stops each goal at *its own*
first success inside a suite too (another member breaking the goal does not stop it: the suite
compares techniques, and a cut-short Best-of-N would understate its ASR).
A benign control set (`GoalRow.benign`) is sent plain alongside and judged for refusal only
(`tasks.benign`), whatever the technique.
"""

from __future__ import annotations

from collections.abc import Iterable

from attacks import build_technique, get_technique
from attacks.spec import AttackSpec
from judges.spec import JudgePanelSpec
from targets import TargetConfig
from tasks.benign import over_refusal as over_refusal_step
from tasks.bon import best_of_n as best_of_n_step
from tasks.completions import completions as completions_step
from tasks.context import GoalRow, RunRef, StepResult, retried
from tasks.evaluation import evaluation as evaluation_step
from tasks.generation import generation as generation_step
from tracking import BestOfNSummary, PipelineRow
from tracking.store_pipeline import GoalShard


def is_streaming(attack: AttackSpec) -> bool:
    return _streams(attack.name)


def _streams(name: str) -> bool:
    return bool(getattr(get_technique(name), "streaming", False))


def split_streaming(attack: AttackSpec) -> tuple[AttackSpec | None, AttackSpec | None]:
    """(the streaming technique, what Generation makes) of a run's attack: Best-of-N alone is
    all streaming; a suite with a Best-of-N member is split in two; anything else generates."""
    if is_streaming(attack):
        return attack, None
    if attack.name != "suite":
        return None, attack
    members = build_technique(attack.name, attack.options).config.techniques
    streamed = [m for m in members if _streams(m.name)]
    if not streamed:
        return None, attack
    rest = [m.model_dump() for m in members if m not in streamed]
    first = streamed[0]
    generated = AttackSpec(name="suite", options={"techniques": rest}) if rest else None
    return AttackSpec(name=first.name, options=dict(first.options)), generated


async def run_steps(
    ref: RunRef, target: TargetConfig, attack: AttackSpec, judges: JudgePanelSpec,
    goals: list[GoalRow], *, concurrency: int, budget_usd: float | None, spent_usd: float,
    shard: GoalShard | None = None,
) -> StepResult:
    """Run the steps on `goals` (`shard`: restrict Completions/Evaluation to a shard's goals);
    return requests made, judgments, spend and whether the budget ran out."""
    attacked = [g for g in goals if not g.benign]
    benign = [g for g in goals if g.benign]
    # The steps with the retries in force now (SIEGEFLOW_TASK_RETRY_DELAYS, read per run).
    generation, best_of_n, completions, evaluation, over_refusal = (retried(step) for step in (
        generation_step, best_of_n_step, completions_step, evaluation_step, over_refusal_step))
    if benign:  # the control set: plain prompts, sent by Completions with the rest
        await generation(ref, AttackSpec(name="baseline"), benign, concurrency)
    streamed, generated = split_streaming(attack)
    made = StepResult(spent_usd=spent_usd, budget_exhausted=False)
    if generated is not None and attacked:  # an attacker model's calls count in the budget
        made = await generation(ref, generated, attacked, concurrency, budget_usd, spent_usd)
    sampled = made
    if streamed is not None:
        sampled = await best_of_n(ref, target, streamed, judges, attacked, concurrency,
                                  budget_usd, made.spent_usd)
    completed = await completions(ref, target, concurrency, budget_usd, sampled.spent_usd,
                                  shard=shard)
    judged = await evaluation(ref, attack, judges, concurrency, budget_usd,
                              completed.spent_usd, shard=shard)
    if benign:
        await over_refusal(ref, shard=shard)
    return StepResult(
        spent_usd=judged.spent_usd,
        budget_exhausted=(made.budget_exhausted or sampled.budget_exhausted
                          or completed.budget_exhausted or judged.budget_exhausted),
        requested=sampled.requested + completed.requested,
        judgments=judged.judgments,
    )


def bon_extra(attack: AttackSpec, rows: Iterable[PipelineRow], threshold: float
              ) -> dict[str, BestOfNSummary]:
    """The summary's `bon` block (ASR@k) for a Best-of-N run; nothing for other techniques.
    The end of a run's rows (`StoredRows`) carry their digest, whose tally of the same rows
    gives the same curve without a second pass over the store."""
    streamed, _ = split_streaming(attack)
    if streamed is None:
        return {}
    from reports.bon import bon_curve, curve_summary
    from reports.rows import StoredRows

    n = int(build_technique(streamed.name, streamed.options).config.n)
    digest = rows.digest if isinstance(rows, StoredRows) else None
    if digest is not None and digest.threshold == threshold:
        return {"bon": curve_summary(digest.bon_curve(n))}
    return {"bon": curve_summary(bon_curve(rows, threshold, n))}
