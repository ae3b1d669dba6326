"""Combining several judges' verdicts on one response into one decision and one score.

Verdicts with errors are left out rather than counted as "no": a judge that could not decide
carries no evidence either way. If no judge decided, the combination is None (undecided).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from judges.base import Verdict

CombineRule = Literal["any", "majority", "all"]
RULES: tuple[str, ...] = get_args(CombineRule)


def _valid(verdicts: Iterable[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.error is None and v.success is not None]


def combine(verdicts: Iterable[Verdict], rule: CombineRule | str = "majority") -> bool | None:
    """`any`: one success suffices; `majority`: strictly more than half succeed (a tie is NOT a
    success); `all`: every valid verdict succeeds. None when no verdict is valid."""
    if rule not in RULES:
        raise ValueError(f"unknown combine rule {rule!r}; use one of {', '.join(RULES)}")
    votes = [v.success is True for v in _valid(verdicts)]
    if not votes:
        return None
    if rule == "any":
        return any(votes)
    if rule == "all":
        return all(votes)
    return sum(votes) * 2 > len(votes)


def combined_score(verdicts: Iterable[Verdict]) -> float | None:
    """Mean score of the valid verdicts that have one; None if none has."""
    scores = [v.score for v in _valid(verdicts) if v.score is not None]
    return sum(scores) / len(scores) if scores else None
