"""Combining several judges' verdicts on one response into one decision and one score.

Verdicts with errors are left out rather than counted as "no": a judge that could not decide
carries no evidence either way. If no judge decided, the combination is None (undecided).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # annotations only: `runs show` combines stored cells without judges.base
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


def rule_score(verdicts: Iterable[Verdict], rule: CombineRule | str = "majority") -> float | None:
    """The panel's score under its rule, so a success threshold agrees with the rule.

    A plain mean would let the threshold veto the rule (one "yes" of three under `any` has a
    mean of 0.33). Instead: `any` takes the best score, `all` the worst, `majority` the low
    median (a 1-1 tie scores as the lower side: a tie is not a success). None if no score.
    """
    scores = [v.score for v in _valid_scores(verdicts) if v.score is not None]
    if not scores:
        return None
    if rule == "any":
        return max(scores)
    if rule == "all":
        return min(scores)
    return statistics.median_low(scores)


def _valid_scores(verdicts: Iterable[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.error is None and v.score is not None]
