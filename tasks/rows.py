"""Pipeline rows rebuilt from the store: one per attempt, with its completion and verdicts.

Rows are derived from what is recorded (never from in-memory step outputs), so a resumed run
and a fresh run finalize from exactly the same data.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from judges import Verdict, combine
from tasks.evaluation import stored_prompt


def rule_score(verdicts: list[Verdict], rule: str) -> float | None:
    """The panel's score under its rule, so `success_threshold` agrees with the rule.

    A plain mean would let the threshold veto the rule (one "yes" of three under `any` is a
    mean of 0.33). Instead: `any` takes the best score, `all` the worst, `majority` the low
    median (a 1-1 tie scores as the lower side, as a tie is not a success).
    """
    scores = [v.score for v in verdicts if v.error is None and v.score is not None]
    if not scores:
        return None
    if rule == "any":
        return max(scores)
    if rule == "all":
        return min(scores)
    return statistics.median_low(scores)


def build_rows(backend: Any, run_id: str, judge_keys: list[str], rule: str) -> list[dict[str, Any]]:
    """Rows in ARCHITECTURE.md's format; only the panel's judges count towards `success`."""
    results = {r.id: r for r in backend.list_results(run_id)}
    verdicts: dict[int, dict[str, Any]] = defaultdict(dict)
    for j in backend.list_judgments(run_id=run_id):
        verdicts[j.attempt_id][j.judge] = j
    rows: list[dict[str, Any]] = []
    for attempt in backend.list_attempts(run_id):
        result = results[attempt.result_id]
        judged = [
            Verdict(judge=key, success=j.success, score=j.score, raw=j.raw, error=j.error,
                    cost_usd=j.cost_usd or 0.0)
            for key in judge_keys
            if (j := verdicts[attempt.id].get(key)) is not None
        ]
        answered = attempt.completed_at is not None and attempt.error is None
        complete = answered and len(judged) == len(judge_keys)
        rows.append({
            "goal": result.goal,
            "goal_index": result.goal_index,
            "goal_id": result.goal_id,
            "result_id": result.id,
            "category": result.category,
            "attempt_id": attempt.id,
            "technique": attempt.technique,
            "variant": attempt.variant,
            "prompt": stored_prompt(attempt).text,
            "prompt_hash": attempt.prompt_hash,
            "response": attempt.response,
            "error": attempt.error,
            "error_kind": attempt.error_kind,
            "pending": attempt.completed_at is None,
            "judges": {
                v.judge: {"success": v.success, "score": v.score, "error": v.error} for v in judged
            },
            "success": combine(judged, rule) if complete else None,
            "score": rule_score(judged, rule) if complete else None,
            "cost_usd": (attempt.cost_usd or 0.0) + sum(v.cost_usd for v in judged),
        })
    return rows
