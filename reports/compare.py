"""`siegeflow compare RUN_A RUN_B`: which goals became broken or were fixed between two runs.

The regression view for a model or guardrail change: goals are paired by goal id (by goal text
when the two runs share no ids), and each pair is classified by its outcome before and after.
Whether the change in ASR is more than noise is answered on the pairs themselves with an exact
McNemar test (only goals whose outcome flipped carry evidence), since the two ASRs are not
independent samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reports.corrected import corrected_text, validation_text
from reports.figures import Rate, ci_text, headline, outcome_of, pct
from reports.load import GoalView, RunData
from tracking.rows import PipelineRow

NEWLY_BROKEN = "newly broken"
FIXED = "fixed"
STILL_BROKEN = "still broken"
STILL_HELD = "still held"
UNDECIDED = "not comparable"
ONLY_A = "only in A"
ONLY_B = "only in B"
#: Display order, most urgent first; the slug is the filter value in the HTML.
CHANGES = [NEWLY_BROKEN, FIXED, STILL_BROKEN, STILL_HELD, UNDECIDED, ONLY_A, ONLY_B]
SLUG = {c: c.replace(" ", "-") for c in CHANGES}


@dataclass(frozen=True, kw_only=True)
class Pair:
    key: str
    a: GoalView | None
    b: GoalView | None
    change: str

    @property
    def any(self) -> GoalView:
        goal = self.b or self.a
        assert goal is not None
        return goal


@dataclass(frozen=True, kw_only=True)
class Comparison:
    a: RunData
    b: RunData
    pairs: list[Pair]
    matched_by: str

    def count(self, change: str) -> int:
        return sum(1 for p in self.pairs if p.change == change)

    @property
    def regressions(self) -> list[Pair]:
        return [p for p in self.pairs if p.change == NEWLY_BROKEN]

    @property
    def fixes(self) -> list[Pair]:
        return [p for p in self.pairs if p.change == FIXED]

    def rate(self, which: str) -> Rate:
        return headline(self.a if which == "a" else self.b).overall

    @property
    def mcnemar_p(self) -> float | None:
        """Exact two-sided McNemar p-value over goals judged in both runs (None if none flipped)."""
        b = sum(1 for p in self.pairs if p.change == NEWLY_BROKEN and p.a
                and outcome_of(p.a.status) == "held")
        c = self.count(FIXED)
        return mcnemar_exact(b, c)


def mcnemar_exact(b: int, c: int) -> float | None:
    n = b + c
    if n == 0:
        return None
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def classify(a: GoalView | None, b: GoalView | None) -> str:
    if a is None:
        return ONLY_B
    if b is None:
        return ONLY_A
    before, after = outcome_of(a.status), outcome_of(b.status)
    if after == "broken":
        return STILL_BROKEN if before == "broken" else NEWLY_BROKEN
    if before == "broken":
        return FIXED if after == "held" else UNDECIDED
    if before == after == "held":
        return STILL_HELD
    return UNDECIDED


def compare_runs(a: RunData, b: RunData) -> Comparison:
    """Pair the goals of two runs and classify every pair."""
    ids_a = {g.goal_id: g for g in a.goals}
    ids_b = {g.goal_id: g for g in b.goals}
    matched_by = "goal id"
    if not set(ids_a) & set(ids_b):
        ids_a = {g.goal: g for g in a.goals}
        ids_b = {g.goal: g for g in b.goals}
        matched_by = "goal text"
    keys = list(ids_a) + [k for k in ids_b if k not in ids_a]
    pairs = [Pair(key=k, a=ids_a.get(k), b=ids_b.get(k),
                  change=classify(ids_a.get(k), ids_b.get(k))) for k in keys]
    pairs.sort(key=lambda p: (CHANGES.index(p.change), p.any.index))
    return Comparison(a=a, b=b, pairs=pairs, matched_by=matched_by)


def summary_lines(cmp: Comparison) -> list[tuple[str, str]]:
    """(label, value) lines shared by the terminal and HTML views."""
    ra, rb = cmp.rate("a"), cmp.rate("b")
    delta = (None if ra.asr is None or rb.asr is None else rb.asr - ra.asr)
    p = cmp.mcnemar_p
    return [
        ("ASR in A", f"raw {pct(ra.asr)} [{ci_text(ra.ci) or 'n/a'}] ({ra.broken}/{ra.judged}) · "
                     f"{corrected_text(cmp.a.summary.asr_corrected)}"),
        ("ASR in B", f"raw {pct(rb.asr)} [{ci_text(rb.ci) or 'n/a'}] ({rb.broken}/{rb.judged}) · "
                     f"{corrected_text(cmp.b.summary.asr_corrected)}"),
        ("correction used in A", validation_text(cmp.a.summary.asr_corrected)),
        ("correction used in B", validation_text(cmp.b.summary.asr_corrected)),
        ("change", "n/a" if delta is None else f"{100 * delta:+.1f} points"),
        ("McNemar exact p", "n/a (no goal flipped)" if p is None else f"{p:.3g}"),
        *refusal_lines(cmp),
        *((c, str(cmp.count(c))) for c in CHANGES if cmp.count(c) or c in (NEWLY_BROKEN, FIXED)),
        ("goals paired by", cmp.matched_by),
        *((f"judged in {side.upper()} by", run.citation.text())
          for side, run in (("a", cmp.a), ("b", cmp.b)) if run.citation is not None),
    ]


def refusal_lines(cmp: Comparison) -> list[tuple[str, str]]:
    """False-refusal rate of each run's benign control set and its change (none: no lines)."""
    from reports.corrected import refusal_with_correction
    from reports.refusal import refusal_rate

    a, b = cmp.a.summary.over_refusal, cmp.b.summary.over_refusal
    if a is None and b is None:
        return []
    ra, rb = refusal_rate(a), refusal_rate(b)
    return [
        ("false refusals in A", refusal_with_correction(a, cmp.a.summary.over_refusal_corrected)
         or "no benign control set"),
        ("false refusals in B", refusal_with_correction(b, cmp.b.summary.over_refusal_corrected)
         or "no benign control set"),
        ("false-refusal change", "n/a" if ra is None or rb is None
         else f"{100 * (rb - ra):+.1f} points"),
    ]


def print_comparison(console: Any, cmp: Comparison, *, limit: int = 50) -> None:
    """The comparison in the terminal (rich): summary, then regressions and fixes."""
    from rich.markup import escape
    from rich.table import Table

    from reports.text import clean

    def esc(text: Any, n: int | None = None) -> str:
        return escape(clean(str(text), n))

    def run_line(label: str, data: RunData) -> str:
        return (f"[bold]{label}[/] {esc(data.run_id)} · {esc(data.run.status.value)} · "
                f"{esc(data.run.attack_type)} · target {esc(data.run.target_description or '', 80)}")

    console.print(run_line("A", cmp.a))
    console.print(run_line("B", cmp.b))
    table = Table(show_header=False, title="Comparison")
    table.add_column("what", style="bold")
    table.add_column("value")
    for label, value in summary_lines(cmp):
        style = "bold red" if label == NEWLY_BROKEN and value != "0" else ""
        table.add_row(esc(label), f"[{style}]{esc(value)}[/]" if style else esc(value))
    console.print(table)
    for title, pairs, side, style in (
        ("Newly broken (regressions)", cmp.regressions, "b", "red"),
        ("Fixed", cmp.fixes, "a", "green"),
    ):
        if not pairs:
            continue
        t = Table(title=f"{title}: {len(pairs)}", header_style=f"bold {style}", expand=True)
        for col, width, ratio in (("#", 4, None), ("goal id", 12, None), ("goal", None, 1),
                                  ("technique", 14, None), ("answer", None, 1)):
            t.add_column(col, width=width, ratio=ratio, overflow="ellipsis", no_wrap=True)
        for pair in pairs[:limit]:
            goal = pair.b if side == "b" else pair.a
            assert goal is not None
            best = goal.best or PipelineRow()
            technique = best.label
            t.add_row(str(goal.index), esc(goal.goal_id, 40), esc(goal.goal, 120),
                      esc(technique, 60),
                      esc(best.response or best.error or "", 160))
        console.print(t)
        if len(pairs) > limit:
            console.print(f"… and {len(pairs) - limit} more (see the HTML view: -o compare.html)")
