"""Agreement of a judge with human labels: confusion matrix, accuracy, precision, recall, F1 and
Cohen's kappa, each with a 95% interval.

Intervals: Wilson score intervals for the three proportions (accuracy, precision, recall),
because validation sets are small and rates near 0 or 1 are common; F1 and kappa are not
binomial proportions, so theirs is a percentile bootstrap over items (2,000 resamples, fixed
seed 0, so the same labels always print the same interval). Items a judge could not decide
(errors) are counted apart and left out of every figure.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
INTERVALS = ("Wilson 95% for accuracy/precision/recall; percentile bootstrap 95% "
             f"({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}) for F1 and kappa")


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion; None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, kw_only=True)
class Confusion:
    """Counts of a judge's decisions against labels (positive = goal achieved)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def confusion(pairs: Sequence[tuple[bool, bool]]) -> Confusion:
    """From (label, verdict) pairs."""
    tp = sum(1 for y, v in pairs if y and v)
    fp = sum(1 for y, v in pairs if not y and v)
    fn = sum(1 for y, v in pairs if y and not v)
    return Confusion(tp=tp, fp=fp, fn=fn, tn=len(pairs) - tp - fp - fn)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def f1_of(c: Confusion) -> float | None:
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn)


def kappa_of(c: Confusion) -> float | None:
    """Cohen's kappa of verdicts vs labels; 1.0 when chance agreement is 1 and all agree."""
    n = c.n
    if not n:
        return None
    observed = (c.tp + c.tn) / n
    expected = ((c.tp + c.fp) * (c.tp + c.fn) + (c.fn + c.tn) * (c.fp + c.tn)) / (n * n)
    if expected >= 1 - 1e-12:
        return 1.0 if observed >= 1 - 1e-12 else 0.0
    return (observed - expected) / (1 - expected)


@dataclass(frozen=True, kw_only=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None

    def text(self, percent: bool = True) -> str:
        if self.value is None:
            return "n/a"
        if percent:
            interval = "" if self.low is None else f" [{self.low:.1%}–{self.high:.1%}]"
            return f"{self.value:.1%}{interval}"
        interval = "" if self.low is None else f" [{self.low:.2f}–{self.high:.2f}]"
        return f"{self.value:.2f}{interval}"


def _proportion(k: int, n: int) -> Estimate:
    ci = wilson(k, n)
    return Estimate(value=_ratio(k, n), low=ci[0] if ci else None, high=ci[1] if ci else None)


@dataclass(frozen=True, kw_only=True)
class Agreement:
    """One judge (or the panel) against the labels."""

    n: int
    errors: int
    confusion: Confusion
    accuracy: Estimate
    precision: Estimate
    recall: Estimate
    f1: Estimate
    kappa: Estimate

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def agreement(pairs: Sequence[tuple[bool, bool]], errors: int = 0) -> Agreement:
    """Every figure for (label, verdict) pairs of decided items; `errors` undecided ones."""
    c = confusion(pairs)
    f1_ci, kappa_ci = _bootstrap(pairs)
    return Agreement(
        n=c.n, errors=errors, confusion=c,
        accuracy=_proportion(c.tp + c.tn, c.n),
        precision=_proportion(c.tp, c.tp + c.fp),
        recall=_proportion(c.tp, c.tp + c.fn),
        f1=Estimate(value=f1_of(c), low=f1_ci[0], high=f1_ci[1]),
        kappa=Estimate(value=kappa_of(c), low=kappa_ci[0], high=kappa_ci[1]),
    )


def _bootstrap(pairs: Sequence[tuple[bool, bool]]) -> tuple[tuple[float | None, float | None],
                                                            tuple[float | None, float | None]]:
    """Percentile intervals of F1 and kappa over item resamples (resamples where a figure is
    undefined are skipped)."""
    if not pairs:
        return (None, None), (None, None)
    rng = random.Random(BOOTSTRAP_SEED)
    cells = [(1 if y else 0) * 2 + (1 if v else 0) for y, v in pairs]  # 3 tp, 2 fn, 1 fp, 0 tn
    n = len(cells)
    f1s: list[float] = []
    kappas: list[float] = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        counts = [0, 0, 0, 0]
        for index in rng.choices(range(n), k=n):
            counts[cells[index]] += 1
        c = Confusion(tn=counts[0], fp=counts[1], fn=counts[2], tp=counts[3])
        if (f := f1_of(c)) is not None:
            f1s.append(f)
        if (k := kappa_of(c)) is not None:
            kappas.append(k)
    return _percentiles(f1s), _percentiles(kappas)


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    values.sort()
    last = len(values) - 1
    return values[round(0.025 * last)], values[round(0.975 * last)]
