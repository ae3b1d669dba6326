"""Pipeline rows for reading: one per attempt, with its verdicts, from the store alone.

Why not `tasks.rows.build_rows`: it lives beside the Prefect tasks and importing it loads
Prefect (4-5 s), which `siegeflow export` and `report` must not pay. This builds the same rows
(ARCHITECTURE.md, "Pipeline rows") from `tracking` only; `tests/reports/test_rows.py` checks it
against `build_rows` on runs the flows recorded, so the two cannot drift apart silently.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any


def prompt_text(messages: Any) -> str:
    """The last user message of a stored prompt (what a judge and a reader see)."""
    for message in reversed(list(messages or [])):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def combine(votes: list[bool], rule: str) -> bool | None:
    """`judges.combine` on already-valid votes: any / strict majority (tie is no) / all."""
    if not votes:
        return None
    if rule == "any":
        return any(votes)
    if rule == "all":
        return all(votes)
    return sum(votes) * 2 > len(votes)


def rule_score(scores: list[float], rule: str) -> float | None:
    """`tasks.rows.rule_score`: best under any, worst under all, low median under majority."""
    if not scores:
        return None
    if rule == "any":
        return max(scores)
    if rule == "all":
        return min(scores)
    return statistics.median_low(scores)


def attempt_rows(
    backend: Any, run_id: str, judge_keys: list[str], rule: str, results: list[Any]
) -> list[dict[str, Any]]:
    """Rows of a run's attempts; only the panel's judges count towards `success`."""
    by_id = {r.id: r for r in results}
    verdicts: dict[int, dict[str, Any]] = defaultdict(dict)
    for j in backend.list_judgments(run_id=run_id):
        verdicts[j.attempt_id][j.judge] = j
    rows: list[dict[str, Any]] = []
    for attempt in backend.list_attempts(run_id):
        result = by_id[attempt.result_id]
        mine = verdicts.get(attempt.id, {})
        judged = [(key, mine[key]) for key in judge_keys if key in mine]
        answered = attempt.completed_at is not None and attempt.error is None
        complete = answered and len(judged) == len(judge_keys)
        valid = [j for _, j in judged if j.error is None and j.success is not None]
        rows.append({
            "goal": result.goal,
            "goal_index": result.goal_index,
            "goal_id": result.goal_id,
            "result_id": result.id,
            "category": result.category,
            "attempt_id": attempt.id,
            "technique": attempt.technique,
            "variant": attempt.variant,
            "prompt": prompt_text(attempt.prompt),
            "prompt_hash": attempt.prompt_hash,
            "response": attempt.response,
            "error": attempt.error,
            "error_kind": attempt.error_kind,
            "pending": attempt.completed_at is None,
            "judges": {
                key: {"success": j.success, "score": j.score, "error": j.error}
                for key, j in judged
            },
            "success": combine([j.success is True for j in valid], rule) if complete else None,
            "score": (
                rule_score([j.score for _, j in judged if j.error is None and j.score is not None],
                           rule)
                if complete else None
            ),
            "cost_usd": (attempt.cost_usd or 0.0) + sum(j.cost_usd or 0.0 for _, j in judged),
        })
    return rows
