"""Slicing a goal set the way users do: a seeded random sample stratified by category, and a
one-line account of the slice that every report repeats ("30 of 200 goals of
harmbench:standard, random sample, seed 7").

Why stratified: a 30-goal sample of a 10-category set should keep every category's share
(a plain random sample can leave a category out and skew per-category ASR). Why seeded: the
same `--sample N --seed S` on the same set must attack the same goals, so two runs (two
targets, two attacks) compare on one slice.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from goals.model import Goal


def stratified_sample(goals: list[Goal], n: int, seed: int) -> list[Goal]:
    """`n` goals drawn at random with `seed`, each category getting its share of `n` (largest
    remainder, ties broken by the seeded draw); the goals keep their set order."""
    if n >= len(goals):
        return list(goals)
    rng = random.Random(seed)
    strata: dict[str, list[Goal]] = defaultdict(list)
    for goal in goals:
        strata[goal.category or ""].append(goal)
    names = sorted(strata)
    quotas = {c: n * len(strata[c]) / len(goals) for c in names}
    take = {c: int(quotas[c]) for c in names}
    order = sorted(names, key=lambda c: (-(quotas[c] - take[c]), rng.random()))
    for c in order[: n - sum(take.values())]:
        take[c] += 1
    chosen = {id(g) for c in names for g in rng.sample(strata[c], take[c])}
    return [g for g in goals if id(g) in chosen]


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Which part of a goal set a run used: recorded with the run, shown in every report."""

    source: str
    total: int  # goals in the set (after any category filter)
    used: int
    how: str  # "all", "first", "sample"
    seed: int | None = None
    categories: tuple[str, ...] = ()

    @property
    def subset(self) -> bool:
        return self.used < self.total or bool(self.categories)

    def describe(self) -> str:
        """`30 of 200 goals of harmbench:standard, random sample, seed 7`."""
        cats = f" (categories: {', '.join(self.categories)})" if self.categories else ""
        if self.how == "sample" and self.used < self.total:
            return (f"{self.used} of {self.total} goals of {self.source}{cats}, random sample "
                    f"stratified by category, seed {self.seed}")
        if self.how == "first" and self.used < self.total:
            return f"first {self.used} of {self.total} goals of {self.source}{cats}"
        return f"all {self.total} goals of {self.source}{cats}"

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "total": self.total, "used": self.used, "how": self.how,
                "seed": self.seed, "categories": list(self.categories),
                "text": self.describe()}
