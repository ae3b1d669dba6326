"""Step 3 — Evaluation: every judge of the panel reads every answered attempt.

Idempotent per (attempt, judge): verdicts already recorded are kept, so a retried task or a
resumed run only asks the judges that have not answered yet. Attempts whose target call failed
are not judged (they are ERROR_AGENT_RESPONSE rows). A judge that cannot produce a verdict
(unparseable output after retries, its own model failing) is recorded as a judge *error*.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from attacks import AttackPrompt, DecodeError, attacker_spend, build_technique
from attacks.spec import AttackSpec
from goals import with_context
from judges import JudgePanel, Verdict
from judges.spec import JudgePanelSpec
from tasks.budget import Budget
from tasks.buffer import PagedSource, WriteBuffer, drain
from tasks.context import RunRef, StepResult, artifact_key, pipeline_task
from tasks.progress import StepProgress
from tracking import is_benign
from tracking.store import SQLBackend
from tracking.store_pipeline import AttemptFilter, GoalShard

logger = logging.getLogger("siegeflow.tasks.evaluation")


def stored_prompt(attempt: Any) -> AttackPrompt:
    """Rebuild the AttackPrompt an attempt was generated from (for decode and the prompt text)."""
    return AttackPrompt(
        technique=attempt.technique,
        variant=attempt.variant,
        messages=list(attempt.prompt or []),
        metadata=dict(attempt.meta or {}),
    )


async def _judge(judge: Any, technique: Any, goal: str, context: str | None,
                 prompt: AttackPrompt, response: str, goal_id: str | None = None,
                 seen: dict[str, str] | None = None) -> Verdict:
    """One judge on one answer, decoded first; an answer that cannot be decoded (a translation
    back failed) is that judgment's error, not a verdict. What decoding paid an attacker model
    travels on the verdict as `attacker_cost_usd` (once per answer: the decode is memoised).
    `seen` receives the decoded text (under "decoded"), so the caller can store what the
    judges read beside the raw answer."""
    with attacker_spend() as spend:
        try:
            # the plain goal sent after an attacker failure: nothing to decode
            decoded = (response if "fallback_for" in prompt.metadata
                       else await technique.adecode(prompt, response))
        except DecodeError as exc:
            return Verdict(judge=judge.label, success=None, score=None, raw=None,
                           error=f"decode: {exc}", attacker_cost_usd=spend.usd)
    if seen is not None:
        seen["decoded"] = decoded
    if getattr(judge, "takes_goal_id", False):  # a reference text found by the goal's id
        verdict = await judge.evaluate(with_context(goal, context), prompt.text, decoded,
                                       goal_id=goal_id)
    elif judge.takes_context:
        verdict = await judge.evaluate(goal, prompt.text, decoded, context=context)
    else:
        verdict = await judge.evaluate(with_context(goal, context), prompt.text, decoded)
    return replace(verdict, attacker_cost_usd=spend.usd) if spend.usd else verdict


def verdict_cost(verdict: Verdict) -> float:
    """What one verdict cost the run: the judge's call plus any decoding by an attacker."""
    return (verdict.cost_usd or 0.0) + (verdict.attacker_cost_usd or 0.0)


def _goals_with_context(
    backend: SQLBackend, run_id: str
) -> tuple[dict[str, tuple[str, str | None, str | None]], set[str]]:
    """Judges read the goal as the target was asked it: with its context, if it has one (a
    judge with a context slot of its own gets the two apart); and its id (a reference text).
    Also the benign control goals (judged by tasks.benign, not by the panel). One row per goal."""
    results = backend.list_results(run_id)
    goals = {r.id: (r.goal, (r.goal_metadata or {}).get("context"), r.goal_id) for r in results}
    return goals, {r.id for r in results if is_benign(r.goal_metadata)}


class PendingJudgments:
    """The (attempt, judge) pairs of answered attempts not judged yet, a page at a time: what a
    resumed or retried step still has to do, without reading a run's every attempt or verdict.
    `remaining` counts each read attempt's open pairs (so per-attempt state can be let go)."""

    def __init__(self, backend: SQLBackend, run_id: str, panel: JudgePanel,
                 where: AttemptFilter) -> None:
        self.backend, self.run_id, self.panel, self.where = backend, run_id, panel, where
        self.labels = [j.label for j in panel.judges]
        self.remaining: dict[int, int] = {}

    def totals(self) -> tuple[int, int]:
        """(answered attempts, pairs still to judge), counted in SQL."""
        answered = self.backend.count_attempts(self.run_id, self.where)
        done = self.backend.count_judged(self.run_id, self.where, self.labels)
        return answered, answered * len(self.labels) - done

    def source(self) -> PagedSource[tuple[Any, Any]]:
        return PagedSource(self.backend.iter_attempts(self.run_id, self.where), self._expand)

    def _expand(self, page: list[Any]) -> list[tuple[Any, Any]]:
        done = self.backend.judged_pairs([a.id for a in page], self.labels)
        work = [(a, j) for a in page for j in self.panel.judges if (a.id, j.label) not in done]
        for attempt, _ in work:
            self.remaining[attempt.id] = self.remaining.get(attempt.id, 0) + 1
        return work

    def settled(self, attempt_id: int) -> bool:
        """One pair of the attempt is done; True when it was its last."""
        left = self.remaining.pop(attempt_id, 1) - 1
        if left > 0:
            self.remaining[attempt_id] = left
        return left <= 0


@dataclass(kw_only=True)
class PairJudge:
    """One (attempt, judge) pair of the Evaluation step, judged and queued for the store; a
    worker of the step's pool calls it. Holds the step's tallies and its two writers."""

    goals: dict[str, tuple[str, str | None, str | None]]
    technique: Any
    budget: Budget
    pending: PendingJudgments
    progress: StepProgress
    written: WriteBuffer  # the verdicts
    decoded: WriteBuffer  # what the judges read
    decoded_ids: set[int] = field(default_factory=set)  # decoded answer queued (in flight only)
    stats: dict[str, float] = field(default_factory=lambda: {
        "judgments": 0, "judge_errors": 0, "skipped_budget": 0, "cost_usd": 0.0,
        "attacker_cost_usd": 0.0})

    async def __call__(self, work: tuple[Any, Any]) -> None:
        attempt, judge = work
        if self.budget.exhausted:
            self.stats["skipped_budget"] += 1
        else:
            goal, context, goal_id = self.goals[attempt.result_id]
            seen: dict[str, str] = {}
            verdict = await _judge(judge, self.technique, goal, context, stored_prompt(attempt),
                                   attempt.response, goal_id, seen)
            text = seen.get("decoded")
            if text is not None and text != attempt.response and attempt.id not in self.decoded_ids:
                self.decoded_ids.add(attempt.id)
                await self.decoded.put(attempt.id, text)
            self.budget.add(verdict_cost(verdict))
            self.stats["cost_usd"] += verdict.cost_usd
            self.stats["attacker_cost_usd"] += verdict.attacker_cost_usd
            self.stats["judgments"] += 1
            self.stats["judge_errors"] += verdict.error is not None
            await self.written.put(attempt.id, verdict)
        if self.pending.settled(attempt.id):  # its last judge: forget it
            self.decoded_ids.discard(attempt.id)
        await self.progress.advance()


@pipeline_task("evaluation")
async def evaluation(
    ref: RunRef,
    attack: AttackSpec,
    judges: JudgePanelSpec,
    concurrency: int = 16,
    budget_usd: float | None = None,
    spent_usd: float = 0.0,
    shard: GoalShard | None = None,
) -> StepResult:
    """Judge every answered attempt with every judge that has not judged it yet.

    `shard` restricts the step to one shard's goals (a sharded run's child).
    """
    backend = ref.backend()
    tracker = ref.step_tracker()
    with tracker.track_step(
        "Evaluation",
        "STEP3_EVALUATE",
        input_data={"judges": [j.key for j in judges.judges], "rule": judges.rule},
        config=judges.model_dump(mode="json"),
    ):
        panel = JudgePanel.from_config(judges)
        technique = build_technique(attack.name, attack.options)
        goals, benign = _goals_with_context(backend, ref.run_id)
        pending = PendingJudgments(backend, ref.run_id, panel, AttemptFilter(
            answered=True, shard=shard, exclude_result_ids=benign))
        answered, total = pending.totals()
        budget = Budget(limit_usd=budget_usd, spent_usd=spent_usd)
        progress = StepProgress("Evaluation", artifact_key(ref.run_id, "evaluation"), total)
        await progress.start()
        pair = PairJudge(goals=goals, technique=technique, budget=budget, pending=pending,
                         progress=progress, written=WriteBuffer(backend.record_verdicts),
                         decoded=WriteBuffer(backend.record_decoded))
        try:
            if total:  # else nothing to read: e.g. Best-of-N judged every sample as it came
                await drain(pending.source(), pair, concurrency)
        finally:
            pair.written.flush()
            pair.decoded.flush()
        await progress.finish()
        for key, value in pair.stats.items():
            tracker.add_step_metadata(key, value)
        tracker.add_step_metadata("attempts_answered", answered)
        return StepResult(spent_usd=budget.spent_usd, budget_exhausted=budget.exhausted,
                          judgments=int(pair.stats["judgments"]), counts=pair.stats)
