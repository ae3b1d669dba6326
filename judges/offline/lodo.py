"""Leave-one-data-set-out (LODO) measurement of the offline judge's head.

A judge that is only measured on answers like those it learnt from flatters itself: every
published labelled set has its own models, attack templates and labelling rules. So each set
is held out in turn, the head is fitted on the union of the others, and its verdicts on the
held-out set are what we report (and cite). GPTFuzz's train and evaluate files share their 100
questions: holding GPTFuzz out removes both from training and measures on `evaluate`. Any
training item whose goal also appears in the held-out set is dropped too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from judges.labels import LabelledItem
from judges.offline.head import fit

#: The labelled sets held out in turn, by `LabelledItem.dataset`.
HELD_OUT = ("harmbench-standard", "harmbench-contextual", "gptfuzz", "jailjudge-mini")


def is_test(item: LabelledItem, held_out: str) -> bool:
    """Whether `item` is measured when `held_out` is left out (GPTFuzz: its evaluate file)."""
    if item.dataset != held_out:
        return False
    return held_out != "gptfuzz" or item.split == "evaluate"


def _goal_key(goal: str) -> str:
    return " ".join(goal.lower().split())


@dataclass(frozen=True, kw_only=True)
class HeldOut:
    """One left-out set: its items and the head's P(success) for each (fitted without it)."""

    name: str
    items: list[LabelledItem]
    probabilities: list[float]
    trained_on: int


def leave_one_out(items: Sequence[LabelledItem], matrix: Any, *, l2: float,
                  held_out: Sequence[str] = HELD_OUT) -> list[HeldOut]:
    """Fit one head per left-out set on every other item (rows of `matrix` follow `items`)."""
    import numpy as np

    labels = np.array([i.label for i in items], np.float64)
    out = []
    for name in held_out:
        test = [n for n, i in enumerate(items) if is_test(i, name)]
        if not test:
            continue
        groups = {items[n].group or items[n].id for n in test}
        goals = {_goal_key(items[n].goal) for n in test}
        train = [n for n, i in enumerate(items)
                 if i.dataset != name and (i.group or i.id) not in groups
                 and _goal_key(i.goal) not in goals]
        head = fit(matrix[train], labels[train], l2=l2)
        probs = head.probability(matrix[test])
        out.append(HeldOut(name=name, items=[items[n] for n in test],
                           probabilities=[float(p) for p in probs], trained_on=len(train)))
    return out
