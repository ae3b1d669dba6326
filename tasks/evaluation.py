"""Step 3 — Evaluation: every judge of the panel reads every answered attempt.

Idempotent per (attempt, judge): verdicts already recorded are kept, so a retried task or a
resumed run only asks the judges that have not answered yet. Attempts whose target call failed
are not judged (they are ERROR_AGENT_RESPONSE rows). A judge that cannot produce a verdict
(unparseable output after retries, its own model failing) is recorded as a judge *error*.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

from attacks import AttackPrompt, DecodeError, attacker_spend, build_technique
from attacks.spec import AttackSpec
from goals import with_context
from judges import JudgePanel, Verdict
from judges.spec import JudgePanelSpec
from tasks.budget import Budget
from tasks.buffer import WriteBuffer, settle_all
from tasks.context import RunRef, StepResult, artifact_key, pipeline_task
from tasks.progress import StepProgress
from tracking import is_benign
from tracking.store import SQLBackend

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
) -> dict[str, tuple[str, str | None, str | None]]:
    """Judges read the goal as the target was asked it: with its context, if it has one (a
    judge with a context slot of its own gets the two apart); and its id (a reference text)."""
    return {
        r.id: (r.goal, (r.goal_metadata or {}).get("context"), r.goal_id)
        for r in backend.list_results(run_id)
    }


def _pending_judgments(
    backend: SQLBackend, run_id: str, panel: JudgePanel, result_ids: list[str] | None
) -> tuple[list[Any], list[tuple[Any, Any]]]:
    """The answered attempts (of `result_ids`' goals, if given) and the (attempt, judge) pairs
    of them not judged yet: what a resumed or retried step still has to do."""
    done = {(j.attempt_id, j.judge) for j in backend.list_judgments(run_id=run_id)}
    mine = None if result_ids is None else set(result_ids)
    benign = {r.id for r in backend.list_results(run_id) if is_benign(r.goal_metadata)}
    answered = [  # a benign control goal is judged by tasks.benign, not by the panel
        a for a in backend.list_attempts(run_id)
        if a.completed_at is not None and a.error is None and a.response is not None
        and (mine is None or a.result_id in mine) and a.result_id not in benign
    ]
    work = [(a, j) for a in answered for j in panel.judges if (a.id, j.label) not in done]
    return answered, work


@pipeline_task("evaluation")
async def evaluation(
    ref: RunRef,
    attack: AttackSpec,
    judges: JudgePanelSpec,
    concurrency: int = 16,
    budget_usd: float | None = None,
    spent_usd: float = 0.0,
    result_ids: list[str] | None = None,
) -> StepResult:
    """Judge every answered attempt with every judge that has not judged it yet.

    `result_ids` restricts the step to those goals (one shard of a sharded run).
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
        goals = _goals_with_context(backend, ref.run_id)
        answered, work = _pending_judgments(backend, ref.run_id, panel, result_ids)
        budget = Budget(limit_usd=budget_usd, spent_usd=spent_usd)
        progress = StepProgress("Evaluation", artifact_key(ref.run_id, "evaluation"), len(work))
        await progress.start()
        limit = asyncio.Semaphore(concurrency)
        stats = {"judgments": 0, "judge_errors": 0, "skipped_budget": 0, "cost_usd": 0.0,
                 "attacker_cost_usd": 0.0}

        async def one(attempt: Any, judge: Any) -> None:
            prompt = stored_prompt(attempt)
            async with limit:
                if budget.exhausted:
                    stats["skipped_budget"] += 1
                    verdict = None
                else:
                    goal, context, goal_id = goals[attempt.result_id]
                    seen: dict[str, str] = {}
                    verdict = await _judge(judge, technique, goal, context, prompt,
                                           attempt.response, goal_id, seen)
                    text = seen.get("decoded")
                    if (text is not None and text != attempt.response
                            and attempt.id not in decoded_ids):
                        decoded_ids.add(attempt.id)
                        decoded.add(attempt.id, text)
            if verdict is not None:
                budget.add(verdict_cost(verdict))
                stats["cost_usd"] += verdict.cost_usd
                stats["attacker_cost_usd"] += verdict.attacker_cost_usd
                stats["judgments"] += 1
                stats["judge_errors"] += verdict.error is not None
                written.add(attempt.id, verdict)
            await progress.advance()

        written = WriteBuffer(backend.record_verdicts)
        decoded: WriteBuffer = WriteBuffer(backend.record_decoded)  # what the judges read
        decoded_ids: set[int] = set()
        try:
            await settle_all(one(a, j) for a, j in work)
        finally:
            written.flush()
            decoded.flush()
        await progress.finish()
        for key, value in stats.items():
            tracker.add_step_metadata(key, value)
        tracker.add_step_metadata("attempts_answered", len(answered))
        return StepResult(spent_usd=budget.spent_usd, budget_exhausted=budget.exhausted,
                          judgments=int(stats["judgments"]), counts=stats)
