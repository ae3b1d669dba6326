"""ASR as a function of N for Best-of-N runs: the curve the paper plots, from what is recorded.

Method (empirical, no fitted power law): a goal counts as broken *within k samples* when one of
its samples with index < k was judged successful; ASR@k is that count over the goals that were
judged (the same denominator as the run's ASR: error goals are excluded and counted apart). Cost
at k is what the run spent on samples with index < k, over every goal, so the cost curve answers
"what would the run have cost with N = k". Early stopping makes these exact: a goal stops at its
first success, and every sample before it was sent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from tracking import BestOfNSummary
from tracking.rows import PipelineRow
from tracking.success import RowOutcome, classify_row

METHOD = "empirical: fraction of judged goals broken within their first k samples"


@dataclass(frozen=True, kw_only=True)
class CurvePoint:
    k: int
    broken: int
    asr: float
    cost_usd: float


@dataclass(frozen=True, kw_only=True)
class BonCurve:
    n: int | None  # the configured N, if known
    goals: int  # judged goals: the denominator
    error_goals: int  # goals with samples but none judged (excluded)
    samples: int
    sample_errors: int
    points: list[CurvePoint]  # where the curve steps, plus k = 1 and the largest k

    def asr_at(self, k: int) -> float | None:
        """ASR@k; None without judged goals."""
        if not self.goals:
            return None
        broken = 0
        for point in self.points:
            if point.k <= k:
                broken = point.broken
        return broken / self.goals

    @property
    def max_k(self) -> int:
        return self.points[-1].k if self.points else 0


def sample_index(row: PipelineRow) -> int | None:
    value = row.meta.get("sample")
    return value if isinstance(value, int) else None


class BonTally:
    """`bon_curve` one row at a time: what a run's samples add up to, O(goals + N) memory."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.first: dict[str, int | None] = {}
        self.cost_at: dict[int, float] = defaultdict(float)
        self.judged: set[str] = set()
        self.samples = self.errors = self.top = 0

    def add(self, row: PipelineRow, outcome: RowOutcome | None = None) -> None:
        """One row (`outcome`: its `classify_row`, when known already)."""
        k = sample_index(row)
        if k is None or row.technique != "bon":
            return
        goal = str(row.result_id)
        self.first.setdefault(goal, None)
        self.samples += 1
        self.top = max(self.top, k + 1)
        self.cost_at[k] += row.cost_usd
        if outcome is None:
            outcome = classify_row(row, self.threshold)
        if outcome is RowOutcome.AGENT_ERROR:
            self.errors += 1
        if outcome in (RowOutcome.SUCCESSFUL, RowOutcome.FAILED):
            self.judged.add(goal)
        if outcome is RowOutcome.SUCCESSFUL:
            current = self.first[goal]
            self.first[goal] = k if current is None else min(current, k)

    def merged(self, other: BonTally) -> BonTally:
        """This tally and `other` as one (e.g. a run's attacked goals and its benign ones,
        tallied apart): what one tally fed both's rows would hold, but the float order of the
        per-k cost sums."""
        out = BonTally(self.threshold)
        for tally in (self, other):
            for goal, k in tally.first.items():
                now = out.first.get(goal)
                out.first[goal] = k if now is None else now if k is None else min(now, k)
            for k, cost in tally.cost_at.items():
                out.cost_at[k] += cost
            out.judged |= tally.judged
            out.samples += tally.samples
            out.errors += tally.errors
            out.top = max(out.top, tally.top)
        return out

    def curve(self, n: int | None = None) -> BonCurve:
        first, judged, top = self.first, self.judged, self.top
        steps = sorted({1, top, *(k + 1 for k in first.values() if k is not None)} - {0})
        points, spent, broken_by = [], 0.0, sorted(k for k in first.values() if k is not None)
        for k in range(top + 1):
            if k in steps:
                broken = sum(1 for b in broken_by if b < k)
                points.append(CurvePoint(k=k, broken=broken, cost_usd=round(spent, 10),
                                         asr=broken / len(judged) if judged else 0.0))
            spent += self.cost_at.get(k, 0.0)
        return BonCurve(n=n, goals=len(judged), error_goals=len(set(first) - judged),
                        samples=self.samples, sample_errors=self.errors, points=points)


def bon_curve(rows: Iterable[PipelineRow], threshold: float, n: int | None = None) -> BonCurve:
    """The curve from pipeline rows (`reports.rows`); rows that are not samples are ignored.
    `rows` may be a stream (`reports.rows.stream_rows`): they are read once, one at a time."""
    tally = BonTally(threshold)
    for row in rows:
        tally.add(row)
    return tally.curve(n)


def curve_summary(curve: BonCurve) -> BestOfNSummary:
    """The run summary's `bon` block."""
    ks = sorted({k for k in (1, 10, 100, 1000, 10000) if k <= curve.max_k} | {curve.max_k} - {0})
    return BestOfNSummary(
        n=curve.n,
        goals=curve.goals,
        broken=curve.points[-1].broken if curve.points else 0,
        error_goals=curve.error_goals,
        samples=curve.samples,
        sample_errors=curve.sample_errors,
        asr_at_n=curve.asr_at(curve.max_k),
        asr_at=[(k, curve.asr_at(k)) for k in ks],
        method=METHOD,
    )


def summary_line(block: BestOfNSummary) -> str:
    """One plain-text line for the terminal and the Prefect artifact (numbers only).

    ASR@N carries its Wilson 95% interval and n; errors are counted apart."""
    from reports.figures import ci_text, pct, wilson

    goals, broken = block.goals, block.broken
    curve = ", ".join(f"ASR@{k} {pct(v)}" for k, v in block.asr_at)
    ci = ci_text(wilson(broken, goals)) or "n/a"
    return (f"Best-of-N (N={block.n}): {curve or 'no samples'}; at the largest k "
            f"{broken}/{goals} judged goals [95% CI {ci}]; {block.samples} samples sent, "
            f"{block.sample_errors} target errors (excluded), "
            f"{block.error_goals} error goals excluded. Method: {METHOD}.")
