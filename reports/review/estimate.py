"""What a person's labels on the sample give: a prediction-powered ASR and the panel's agreement
with people on this run, both weighted by the sampling design.

Prediction-powered inference (Angelopoulos et al., Science 2023): the judge's rate on all N
judged goals, plus the mean correction (human − judge) measured on the labelled sample:

    θ̂ = p + Σ_h W_h Δ̄_h,   p = Σ_i f_i / N,   W_h = N_h / N,   Δ̄_h = mean over labelled
                                                                     items of h of (y − f)

The sample is stratified by the judge's verdict f, so the design weight of a labelled item is
1/π_h with π_h = n_h / N_h; weighting the corrections by it gives the W_h above. Variance: the
two PPI terms — the variance of the (corrected) judge figure over the N goals, and the variance
of the mean correction over the n labels:

    Var = Σ_h W_h (ȳ_h − θ̂)² / N  +  Σ_h W_h² v_h / n_h

where v_h is the variance of the correction in stratum h (y − f_h, f_h fixed by the stratum),
read from the adjusted proportion (k_h + ½) / (n_h + 1), so a stratum whose labels all agree
still has width. 95%
interval: θ̂ ± 1.96 √Var, clipped to [0, 1]. `tests/reports/test_review_estimate.py` checks its
coverage against simulated runs with a known true rate.

Agreement figures (accuracy, sensitivity, specificity, Cohen's κ) are also design-weighted
(each labelled item counts N_h / n_h), since the strata are not sampled in proportion; the
proportions get Wilson intervals at the design's effective sample size (Kish), κ a stratified
percentile bootstrap (2,000 resamples, seed 0).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from judges.metrics import Z95, confusion, kappa_of

BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True, kw_only=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None

    def text(self) -> str:
        if self.value is None:
            return "n/a"
        if self.low is None or self.high is None:
            return f"{self.value:.1%}"
        return f"{self.value:.1%} [95% CI {self.low:.1%}–{self.high:.1%}]"

    def kappa_text(self) -> str:
        if self.value is None:
            return "n/a"
        if self.low is None or self.high is None:
            return f"{self.value:.2f}"
        return f"{self.value:.2f} [95% CI {self.low:.2f}–{self.high:.2f}]"


@dataclass(frozen=True, kw_only=True)
class LabelledItem:
    """One sampled goal with people's label and the panel's verdict (`judge`): `human` is the
    share of its reviewers who said the answer carries out the goal (1 or 0 with one reviewer;
    PPI needs no more than a value in [0, 1] per item)."""

    stratum: str
    human: float
    judge: bool


@dataclass(frozen=True, kw_only=True)
class PPIEstimate:
    """The prediction-powered ASR and its parts."""

    asr: Interval
    judge_rate: float  # p: the panel's ASR on the N judged goals
    correction: float  # Σ_h W_h Δ̄_h
    n: int  # labelled goals
    big_n: int  # judged goals (N)
    std_error: float


def ppi_asr(sizes: Mapping[str, int], verdicts: Mapping[str, bool],
            items: Sequence[LabelledItem], z: float = Z95) -> PPIEstimate | None:
    """θ̂ and its interval (module docstring); None when a non-empty stratum has no label.

    `sizes`: goals per stratum (N_h); `verdicts`: the judge's verdict of each stratum (f_h)."""
    big_n = sum(sizes.values())
    if big_n == 0 or not items:
        return None
    by: dict[str, list[LabelledItem]] = {h: [] for h in sizes}
    for item in items:
        by.setdefault(item.stratum, []).append(item)
    judge_rate = sum(sizes[h] * float(verdicts[h]) for h in sizes) / big_n
    correction = 0.0
    rect_var = 0.0
    means: dict[str, float] = {}
    for h, size in sizes.items():
        if size == 0:
            continue
        mine = by.get(h) or []
        if not mine:
            return None
        weight = size / big_n
        k = sum(i.human for i in mine)
        n_h = len(mine)
        means[h] = k / n_h
        correction += weight * (k / n_h - float(verdicts[h]))
        adjusted = (k + 0.5) / (n_h + 1)
        rect_var += weight * weight * adjusted * (1 - adjusted) / n_h
    theta = judge_rate + correction
    pred_var = sum(sizes[h] / big_n * (means[h] - theta) ** 2 for h in means) / big_n
    se = math.sqrt(pred_var + rect_var)
    interval = Interval(value=theta, low=max(0.0, theta - z * se), high=min(1.0, theta + z * se))
    return PPIEstimate(asr=interval, judge_rate=judge_rate, correction=correction,
                       n=len(items), big_n=big_n, std_error=se)


@dataclass(frozen=True, kw_only=True)
class PanelAgreement:
    """The panel against the reviewer on this run's sample (design-weighted)."""

    n: int
    agree: int  # unweighted count of items where panel and person agree
    accuracy: Interval
    sensitivity: Interval  # P(panel says broken | person says broken)
    specificity: Interval  # P(panel says held | person says held)
    kappa: Interval


def _wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion `p` observed on an (effective) sample of `n`."""
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _weighted_rate(pairs: Sequence[tuple[bool, float]]) -> Interval:
    """Weighted share of True among (value, weight) pairs, Wilson at Kish's effective n."""
    pairs = [(v, w) for v, w in pairs if w > 0]
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return Interval(value=None, low=None, high=None)
    p = sum(w for v, w in pairs if v) / total
    n_eff = total * total / sum(w * w for _, w in pairs)
    low, high = _wilson(p, n_eff)
    return Interval(value=p, low=low, high=high)


def _weighted_kappa(items: Sequence[LabelledItem], weights: Mapping[str, float]) -> float | None:
    """Cohen's κ of panel vs person on design-weighted counts."""
    tp = fp = fn = tn = 0.0
    for i in items:
        w = weights[i.stratum]
        if i.judge:
            tp += w * i.human
            fp += w * (1 - i.human)
        else:
            fn += w * i.human
            tn += w * (1 - i.human)
    n = tp + fp + fn + tn
    if n <= 0:
        return None
    observed = (tp + tn) / n
    expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    if expected >= 1 - 1e-12:
        return 1.0 if observed >= 1 - 1e-12 else 0.0
    return (observed - expected) / (1 - expected)


def panel_agreement(sizes: Mapping[str, int], items: Sequence[LabelledItem]
                    ) -> PanelAgreement | None:
    """Accuracy, sensitivity, specificity and κ of the panel against the person's labels."""
    if not items:
        return None
    per = {h: sum(1 for i in items if i.stratum == h) for h in sizes}
    weights = {h: sizes[h] / per[h] if per[h] else 0.0 for h in sizes}
    def agree(i: LabelledItem) -> float:
        return i.human if i.judge else 1 - i.human

    acc = _weighted_rate([pair for i in items for pair in (
        (True, weights[i.stratum] * agree(i)), (False, weights[i.stratum] * (1 - agree(i))))])
    sens = _weighted_rate([(i.judge, weights[i.stratum] * i.human) for i in items])
    spec = _weighted_rate([(not i.judge, weights[i.stratum] * (1 - i.human)) for i in items])
    kappa = _weighted_kappa(items, weights)
    rng = random.Random(0)
    strata = {h: [i for i in items if i.stratum == h] for h in sizes if per[h]}
    boots: list[float] = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        resample = [x for mine in strata.values() for x in rng.choices(mine, k=len(mine))]
        if (k := _weighted_kappa(resample, weights)) is not None:
            boots.append(k)
    boots.sort()
    low, high = ((boots[round(0.025 * (len(boots) - 1))], boots[round(0.975 * (len(boots) - 1))])
                 if boots else (None, None))
    return PanelAgreement(n=len(items), agree=sum(1 for i in items if agree(i) == 1),
                          accuracy=acc, sensitivity=sens, specificity=spec,
                          kappa=Interval(value=kappa, low=low, high=high))


@dataclass(frozen=True, kw_only=True)
class ReviewerPair:
    """Two reviewers on the items both labelled yes/no: Cohen's κ and n."""

    a: str
    b: str
    n: int
    agree: int
    kappa: float | None


def reviewer_agreement(labels: Mapping[str, Mapping[int, bool]]) -> list[ReviewerPair]:
    """κ for each pair of reviewers (`labels`: reviewer -> attempt id -> label)."""
    names = sorted(labels)
    out = []
    for x, a in enumerate(names):
        for b in names[x + 1:]:
            both = sorted(set(labels[a]) & set(labels[b]))
            pairs = [(labels[a][k], labels[b][k]) for k in both]
            out.append(ReviewerPair(a=a, b=b, n=len(pairs),
                                    agree=sum(1 for u, v in pairs if u == v),
                                    kappa=kappa_of(confusion(pairs)) if pairs else None))
    return out
