"""The corrected rate: Rogan–Gladen, Lang & Reiczigel's interval against a hand computation and
against the parametric bootstrap, clipping, and the Youden's J rule."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from judges.correction import (
    MIN_YOUDEN_LOW,
    Counts,
    binomial,
    bootstrap_interval,
    correct,
    lang_reiczigel,
    rogan_gladen,
    youden_interval,
)

# A judge validated on 100 labelled answers: 50 positives (40 caught: Se 0.8) and 50 negatives
# (45 passed: Sp 0.9). The run: 30 of 100 judged goals called broken.
JUDGE = Counts(tp=40, fn=10, tn=45, fp=5)


def test_rogan_gladen_by_hand() -> None:
    # (p + Sp - 1) / (Se + Sp - 1) = (0.30 + 0.90 - 1) / (0.80 + 0.90 - 1) = 0.20 / 0.70
    assert rogan_gladen(0.30, 0.80, 0.90) == pytest.approx(0.2857143, abs=1e-7)
    assert correct(30, 100, JUDGE).value == pytest.approx(0.2857143, abs=1e-7)


def test_lang_reiczigel_by_hand() -> None:
    """Every step of the interval written out (z = 1.959964, z² = 3.841459)."""
    z2 = 3.841459
    n_ap = 100 + z2                                   # 103.841459
    ap = (30 + z2 / 2) / n_ap                         # 31.920730 / 103.841459 = 0.307399
    se, n_se = 41 / 52, 52                            # (40 + 1) / (50 + 2) = 0.788462
    sp, n_sp = 46 / 52, 52                            # (45 + 1) / (50 + 2) = 0.884615
    youden = se + sp - 1                              # 0.673077
    p = (ap + sp - 1) / youden                        # 0.192014 / 0.673077 = 0.285278
    var_se = se * (1 - se) / n_se                     # 0.0032075
    var_sp = sp * (1 - sp) / n_sp                     # 0.0019629
    var = (ap * (1 - ap) / n_ap                       # 0.0020503
           + p**2 * var_se                            # 0.0002610
           + (1 - p) ** 2 * var_sp) / youden**2       # 0.0010027 -> 0.0033141 / 0.453033
    shift = 2 * z2 * (p * var_se - (1 - p) * var_sp)  # 7.682918 * -0.0004879 = -0.0037485
    half = 1.959964 * math.sqrt(var)                  # 1.959964 * 0.085530 = 0.167636
    assert var == pytest.approx(0.0073154, abs=1e-6)
    assert shift == pytest.approx(-0.0037485, abs=1e-6)
    low, high = p + shift - half, p + shift + half    # 0.113894, 0.449166
    assert (low, high) == pytest.approx((0.113894, 0.449166), abs=1e-5)
    assert lang_reiczigel(30, 100, JUDGE) == pytest.approx((low, high), abs=1e-5)
    result = correct(30, 100, JUDGE)
    assert (result.low, result.high) == pytest.approx((0.113894, 0.449166), abs=1e-5)
    assert result.raw == 0.3 and result.supported


@pytest.mark.parametrize("x, n, judge", [
    (30, 100, JUDGE),
    (126, 420, Counts(tp=170, fn=30, tn=260, fp=40)),
    (60, 400, Counts(tp=160, fn=40, tn=180, fp=20)),
    (150, 300, Counts(tp=120, fn=30, tn=140, fp=10)),
])
def test_lang_reiczigel_agrees_with_the_parametric_bootstrap(x: int, n: int, judge: Counts
                                                             ) -> None:
    """Away from the [0, 1] edges the two intervals agree within 0.02 at each end (2,000
    seeded resamples of the three binomials; Monte Carlo error of a 2.5% quantile ~0.005)."""
    analytic = lang_reiczigel(x, n, judge)
    simulated = bootstrap_interval(x, n, judge)
    assert simulated == pytest.approx(analytic, abs=0.02)
    assert bootstrap_interval(x, n, judge) == simulated  # seeded: same figures every time
    value = correct(x, n, judge).value
    assert analytic[0] < value < analytic[1]


def test_clipped_to_zero_and_one() -> None:
    # 5/200 = 2.5% observed is below the judge's false-positive rate (1 - Sp = 10%): the true
    # rate is estimated at 0, not at a negative number; likewise above Se, at 1.
    assert correct(5, 200, JUDGE).value == 0.0
    assert correct(5, 200, JUDGE).low == 0.0
    assert correct(190, 200, JUDGE).value == 1.0 and correct(190, 200, JUDGE).high == 1.0
    assert rogan_gladen(0.0, 0.8, 0.9) == 0.0 and rogan_gladen(1.0, 0.8, 0.9) == 1.0
    assert bootstrap_interval(5, 200, JUDGE)[0] == 0.0


def test_a_judge_too_weak_gives_no_corrected_figure() -> None:
    # Se 0.65, Sp 0.62 on 40 + 40 items: J = 0.275, its lower 95% bound is below 0.2.
    weak = Counts(tp=26, fn=14, tn=25, fp=15)
    youden, low = youden_interval(weak)
    assert youden == pytest.approx(0.275)
    assert low is not None and low <= MIN_YOUDEN_LOW
    result = correct(30, 100, weak)
    assert not result.supported and result.value is None and result.low is None
    assert result.youden == pytest.approx(0.275) and result.youden_low == low
    # A strong judge: J 0.7, bound 0.53 by hand: 0.673077 - 1.959964 * sqrt(0.0032075 + 0.0019629)
    assert youden_interval(JUDGE)[1] == pytest.approx(0.673077 - 1.959964 * math.sqrt(0.0051704),
                                                      abs=1e-5)
    with pytest.raises(ValueError):
        rogan_gladen(0.3, 0.5, 0.5)


def test_nothing_judged_has_no_figure_but_keeps_the_judges_j() -> None:
    result = correct(0, 0, JUDGE)
    assert result.value is None and result.raw is None and result.youden == pytest.approx(0.7)


def test_binomial_sampler_has_the_right_mean_and_variance() -> None:
    rng = random.Random(3)
    for n, p in ((50, 0.3), (2000, 0.02), (7, 0.95)):
        draws = [binomial(rng, n, p) for _ in range(20000)]
        assert statistics.fmean(draws) == pytest.approx(n * p, rel=0.02, abs=0.02)
        assert statistics.pvariance(draws) == pytest.approx(n * p * (1 - p), rel=0.06)
        assert 0 <= min(draws) and max(draws) <= n
    assert binomial(rng, 10, 0.0) == 0 and binomial(rng, 10, 1.0) == 10
