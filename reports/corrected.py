"""How a rate corrected for judge error is printed, next to the raw one, in every format.

The figures are the ones `finish_run` stored in the run summary (`asr_corrected`,
`over_refusal_corrected`), never recomputed here: every report of a run prints the same
numbers. Plain text out; each medium escapes it as it escapes any other text.
"""

from __future__ import annotations

from reports.figures import asr_text, pct
from tracking import CorrectedRate, GoalCounts, JudgeCorrection, OverRefusal, RunSummary
from tracking.summary import CORRECTED, NO_COUNTS, NOT_VALIDATED, UNSUPPORTED

CANNOT_SUPPORT = "the judge cannot support a corrected figure"


def _interval(rate: CorrectedRate) -> str:
    if rate.low is None or rate.high is None:
        return ""
    return f" [{pct(rate.low)}–{pct(rate.high)}]"


def _agreement(block: JudgeCorrection) -> str:
    """Accuracy and Cohen's kappa of the counts used ("" without counts)."""
    from judges.metrics import Confusion, kappa_of

    if None in (block.tp, block.fp, block.tn, block.fn):
        return ""
    c = Confusion(tp=block.tp or 0, fp=block.fp or 0, tn=block.tn or 0, fn=block.fn or 0)
    kappa = kappa_of(c)
    k = "" if kappa is None else f" (κ {kappa:.2f})"
    return f"{(c.tp + c.tn) / c.n:.0%} agreement with human labels{k}, " if c.n else ""


def validation_text(block: JudgeCorrection | None) -> str:
    """Which validation a correction used: panel, source, stratum (or pooled), n, Se/Sp."""
    if block is None or block.status == NOT_VALIDATED:
        return "no validation against human labels"
    where = block.source or "validation"
    stratum = f", {block.stratum} stratum" if block.stratum else ", pooled out-of-sample counts"
    n = f", n={block.validation_n}" if block.validation_n is not None else ""
    rates = ""
    if block.sensitivity is not None and block.specificity is not None:
        label = "refusal" if block.positive == "refusal" else "success"
        rates = (f"; {_agreement(block)}{label} sensitivity {block.sensitivity:.2f}, "
                 f"specificity {block.specificity:.2f}")
    origin = f" ({block.origin})" if block.origin else ""
    caveat = ""
    if (block.answers_per_goal or 0) > 1 and block.status == CORRECTED:
        caveat = (f"; goals had up to {block.answers_per_goal} judged answers each and count as "
                  "broken if any is judged so: per-answer error rates understate per-goal false "
                  "positives")
    return f"{block.panel}: {where}{stratum}{n}{rates}{origin}{caveat}"


def corrected_text(block: JudgeCorrection | None, rate: CorrectedRate | None = None) -> str:
    """"corrected for judge error 23.1% [10.9%–33.7%]", or why there is no corrected figure.
    `rate`: one category's (default: the block's overall rate)."""
    if block is None:
        return "no corrected figure: this run was recorded before corrections were stored"
    if block.status == NOT_VALIDATED:
        return "no corrected figure: the panel is not validated against human labels"
    if block.status == NO_COUNTS:
        return "no corrected figure: the validation stored no counts"
    if block.status == UNSUPPORTED:
        youden = "n/a" if block.youden is None else f"{block.youden:.2f}"
        low = "n/a" if block.youden_low is None else f"{block.youden_low:.2f}"
        limit = block.min_youden_low if block.min_youden_low is not None else 0.2
        return (f"{CANNOT_SUPPORT} (Youden's J = Se + Sp − 1 = {youden}, lower 95% bound "
                f"{low} ≤ {limit:g})")
    rate = rate if rate is not None else block.overall
    if block.status != CORRECTED or rate is None or rate.n <= 0 or rate.value is None:
        return "corrected for judge error: n/a (0 judged)"
    return f"corrected for judge error {pct(rate.value)}{_interval(rate)}"


def corrected_short(block: JudgeCorrection | None) -> str:
    """A table cell: "23.1% [10.9%–33.7%]", or a few words saying why there is none."""
    if block is None:
        return "not stored"
    if block.status == CORRECTED and block.overall is not None and block.overall.value is not None:
        return f"{pct(block.overall.value)}{_interval(block.overall)}"
    return {NOT_VALIDATED: "none: not validated", NO_COUNTS: "none: no counts",
            UNSUPPORTED: "none: judge too weak (J)"}.get(block.status, "n/a")


def category_corrected(block: JudgeCorrection | None, category: str) -> str:
    """One category's corrected ASR (same validation counts as the overall one)."""
    rate = block.categories.get(category) if block is not None else None
    if block is not None and block.status == CORRECTED:
        if rate is None or rate.value is None:
            return "n/a"
        return f"{pct(rate.value)}{_interval(rate)}"
    return corrected_short(block)


def counts_corrected(block: JudgeCorrection | None, x: int, n: int) -> str:
    """A breakdown the summary does not store (per technique): corrected with the very counts
    the stored block used, so it agrees with the overall figure's validation."""
    if block is None or block.status != CORRECTED or None in (block.tp, block.fp, block.tn,
                                                              block.fn):
        return corrected_short(block)
    if n <= 0:
        return "n/a"
    from judges.correction import Counts, correct

    result = correct(x, n, Counts(tp=block.tp or 0, fp=block.fp or 0, tn=block.tn or 0,
                                  fn=block.fn or 0))
    if result.value is None:
        return "n/a"
    rate = CorrectedRate(x=x, n=n, value=result.value, low=result.low, high=result.high)
    return f"{pct(rate.value)}{_interval(rate)}"


def asr_pair(summary: RunSummary | GoalCounts, block: JudgeCorrection | None,
             category: str | None = None) -> str:
    """"raw 30.0% [25.7%–34.7%] (126/420 judged goals) · corrected for judge error 23.1%
    [10.9%–33.7%]" — the raw ASR always, the corrected one (or why not) after it."""
    raw = asr_text(summary.successful, summary.successful + summary.failed)
    rate = None
    if category is not None and block is not None:
        rate = block.categories.get(category)
        if rate is None and block.status == CORRECTED:
            return f"raw {raw}"
    return f"raw {raw} · {corrected_text(block, rate)}"


def refusal_correction_text(block: JudgeCorrection | None) -> str:
    """The false-refusal rate corrected for the refusal detector's error, and the detector's
    validated agreement (which validation, which stratum)."""
    if block is None:
        return corrected_text(block)
    if block.status == NOT_VALIDATED:
        return ("the refusal detector is not validated against human labels: no corrected "
                "figure")
    return f"{corrected_text(block)}; refusal detector: {validation_text(block)}"


def refusal_with_correction(block: OverRefusal | None, corrected: JudgeCorrection | None
                            ) -> str | None:
    """`refusal_line` followed by its correction (None: the run has no benign set)."""
    from reports.refusal import refusal_line

    line = refusal_line(block)
    if line is None:
        return None
    return f"{line} · {refusal_correction_text(corrected)}"
