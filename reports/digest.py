"""A finished run reduced goal by goal: what the summary, the artifacts, the terminal and the
report need, without holding every attempt (issue 23).

`RunDigest.add(result, rows)` takes one goal's rows (`reports.rows.goal_groups`) and keeps only
small figures: per-technique tallies, how many answers were judged and cut, each judge's labels
as a compact code per attempt (for kappa), the goal's best rows (`reports.rows.rank`) and its
count and cost. Every figure is computed by the same functions the all-rows path used, in the
same order, so a digest gives exactly the figures `rows_of` did.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any

from reports.bon import BonCurve, BonTally
from reports.rows import rank
from targets.completion import is_truncated
from tracking import BENIGN, ResultRecord, is_benign
from tracking.rows import PipelineRow
from tracking.success import RowOutcome, attack_success_rate, classify_row
from tracking.summary import TechniqueFigures, technique_figures

if TYPE_CHECKING:
    from reports.figures import JudgeTally, Rate

#: Attempts of one goal the HTML report shows in full (its best ones by `rank`); the export
#: and `runs show RUN --goal ID` have every attempt.
REPORT_ATTEMPTS_PER_GOAL = 50
#: Goals the HTML report shows in detail (their shown rows and best row), chosen by
#: `detail_key`; every other goal keeps its compact figures only (`GoalDigest.detailed`), and
#: every figure (ASR, tallies, kappa, cost, the Best-of-N curve) still counts it. The export
#: lists every goal. 50,000 goals of 4 attempts kept 1.4 GB and a 77 MB report (issue 23).
REPORT_GOALS = 1000

_Code = tuple[tuple[str, Hashable], ...]
#: A `reports.figures.Rate`'s counts: the outcomes `reports.figures.group_outcome` gives.
_RATE_KEYS = ("broken", "held", "errors", "pending")


@dataclass(kw_only=True)
class GoalDigest:
    """One goal after its rows were dropped: the rows worth showing, how many there were."""

    result: ResultRecord
    attempts: int
    cost_usd: float
    best: PipelineRow | None
    shown: list[PipelineRow]  # at most REPORT_ATTEMPTS_PER_GOAL, in attempt order
    pending: int = 0  # attempts not answered yet
    errors: int = 0  # answered with an error (`AttemptCounts`' split)
    best_id: int | None = None  # the best row's attempt id (kept when the row is not)
    #: False: beyond the report's `REPORT_GOALS`; `best` and `shown` were dropped.
    detailed: bool = True


def detail_key(attacked: bool, broken: bool, position: int) -> tuple[bool, bool, int]:
    """Which goals the report shows in detail, highest first: attacked goals before benign
    control goals (the report lists no control goal's rows), broken goals (a successful best
    attempt) first, then in goal order: the pick of the Prefect table artifact's and the
    terminal's goal tables (broken first, then by index), so the goals they list are the ones
    whose best rows were kept."""
    return attacked, broken, -position


def top_rows(rows: list[PipelineRow], threshold: float, limit: int,
             ranks: Sequence[tuple[int, float]] | None = None) -> list[PipelineRow]:
    """The `limit` best rows by `rank` (first of equals first), back in attempt order; the
    goal's best row (`reports.rows.best_row`) is always among them. `ranks`: the rows'
    `rank`s, when known already."""
    if limit <= 0:
        return []
    if len(rows) <= limit:
        return list(rows)
    if ranks is None:
        ranks = [rank(row, threshold) for row in rows]
    order = sorted(range(len(rows)), key=lambda i: (-ranks[i][0], -ranks[i][1], i))
    return [rows[i] for i in sorted(order[:limit])]


@dataclass(kw_only=True)
class _JudgeCodes:
    """Per goal: attempt ids (ascending) and a code for the labels its judges gave."""

    names: set[str] = field(default_factory=set)
    book: dict[_Code, int] = field(default_factory=dict)
    goals: list[tuple[array[int], array[int]]] = field(default_factory=list)

    def add(self, rows: list[PipelineRow]) -> None:
        from judges.agreement import label_of

        ids, codes = array("I"), array("I")  # attempt ids are int4 (8 bytes an attempt)
        for row in rows:
            if not row.judges:
                continue
            self.names.update(row.judges)
            code = tuple((n, lab) for n, c in row.judges.items()
                         if (lab := label_of(c)) is not None)
            if len(code) < 2:  # an item two judges did not both decide is in no kappa
                continue
            ids.append(row.attempt_id or 0)
            codes.append(self.book.setdefault(code, len(self.book)))
        if ids:
            self.goals.append((ids, codes))

    def items(self) -> Iterator[dict[str, Hashable]]:
        """Each judged attempt's labels by judge, in attempt order (the order `rows_of` had)."""
        decoded = [dict(code) for code in self.book]
        for _, code in heapq.merge(*(zip(i, c, strict=True) for i, c in self.goals)):
            yield decoded[code]


def agreement_of(codes: _JudgeCodes) -> dict[str, Any]:
    """`judges.judge_agreement(rows_by_judge(rows))` from the codes, item for item."""
    from judges.agreement import cohen_kappa, fleiss_kappa

    names = sorted(codes.names)
    pairwise: dict[str, dict[str, Any]] = {}
    for first, second in combinations(names, 2):
        a: list[Hashable] = []
        b: list[Hashable] = []
        for labels in codes.items():
            if first in labels and second in labels:
                a.append(labels[first])
                b.append(labels[second])
        pairwise[f"{first}|{second}"] = {
            "judges": [first, second], "n": len(a), "kappa": cohen_kappa(a, b) if a else None,
            "observed_agreement": (sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
                                   if a else None),
        }
    fleiss: dict[str, Any] | None = None
    if len(names) >= 3:
        common = [labels for labels in codes.items() if all(n in labels for n in names)]
        categories = sorted({labels[n] for n in names for labels in common}, key=repr)
        rows: dict[tuple[Hashable, ...], list[int]] = {}
        matrix = [rows.setdefault(tuple(labels[n] for n in names),
                                  [sum(labels[n] == c for n in names) for c in categories])
                  for labels in common]
        fleiss = {"judges": names, "n": len(matrix),
                  "kappa": fleiss_kappa(matrix) if matrix else None}
    return {"judges": names, "pairwise": pairwise, "fleiss": fleiss}


def _merge_techniques(into: dict[str, dict[str, int]], figures: list[dict[str, Any]]) -> None:
    """Add one goal's `technique_figures` to the run's tallies."""
    for f in figures:
        tally = into.setdefault(f["technique"], dict.fromkeys(
            ("goals", "attempts", "broken", "held", "attacker_failures", "target_errors"), 0))
        for key in tally:
            tally[key] += int(f[key])


@dataclass(kw_only=True)
class ReportAggregates:
    """The report's figures over a run's attacked goals, computed while streaming them (the
    report's goals then carry only their shown rows): `reports.figures` reads these."""

    attempts: int = 0
    by_technique: list[Rate] = field(default_factory=list)
    by_variant: list[Rate] = field(default_factory=list)
    judge_tallies: list[JudgeTally] = field(default_factory=list)
    techniques: list[TechniqueFigures] = field(default_factory=list)
    bon: BonCurve | None = None


class RunDigest:
    """A run reduced goal by goal (module docstring). Feed it with `add`, in goal order."""

    def __init__(self, threshold: float, judge_keys: list[str], *,
                 shown: int = REPORT_ATTEMPTS_PER_GOAL, detail: int | None = None) -> None:
        """`shown`: rows kept per detailed goal; `detail`: goals kept in detail (`detail_key`,
        a bounded heap while the goals go by), None: every goal."""
        self.threshold = threshold
        self.judge_keys = judge_keys
        self.limit = shown
        self.detail = detail
        self.goals: list[GoalDigest] = []
        self._detailed: list[tuple[tuple[bool, bool, int], int]] = []  # min-heap: worst on top
        self.truncated = 0
        self.answers_per_goal: dict[str | None, int] = {}
        self.codes = _JudgeCodes()
        self._techniques: dict[str, dict[str, int]] = {}  # every goal's (the summary's)
        self._report_techniques: dict[str, dict[str, int]] = {}  # attacked goals' (the report's)
        # goals counted by outcome, per technique and per technique/variant (`by_technique`)
        self._outcomes: tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]] = ({}, {})
        self._tallies: dict[str, list[int]] = {k: [0, 0, 0] for k in judge_keys}
        self._bon = BonTally(threshold)  # attacked goals' samples (the report's curve)
        self._bon_benign = BonTally(threshold)  # benign goals' (in the summary's curve too)
        self._attempts = 0
        self.any_bon = False

    @classmethod
    def of_rows(cls, threshold: float, judge_keys: list[str], rows: Iterable[PipelineRow],
                results: list[ResultRecord], *, detail: int | None = None) -> RunDigest:
        """A digest of rows already in memory (a caller that read them), goal by goal in the
        order of `results`."""
        digest = cls(threshold, judge_keys, detail=detail)
        by_result: dict[str | None, list[PipelineRow]] = {}
        for row in rows:
            by_result.setdefault(row.result_id, []).append(row)
        for result in results:
            digest.add(result, by_result.get(result.id, []))
        return digest

    def add(self, result: ResultRecord, rows: list[PipelineRow]) -> None:
        """One goal's rows (all of them, in attempt order); they may be dropped afterwards.
        Each row is classified once (`classify_row`) for every figure that needs it."""
        from reports.rows import best_row, rank_of

        outcomes = [classify_row(row, self.threshold) for row in rows]
        ranks = [rank_of(row, outcome) for row, outcome in zip(rows, outcomes, strict=True)]
        cost = sum(r.cost_usd for r in rows)
        best = best_row(rows, self.threshold, ranks)
        self.goals.append(GoalDigest(result=result, attempts=len(rows), cost_usd=cost,
                                     best=best,
                                     shown=top_rows(rows, self.threshold, self.limit, ranks),
                                     pending=sum(1 for r in rows if r.pending),
                                     errors=sum(1 for r in rows
                                                if not r.pending and r.error is not None),
                                     best_id=best.attempt_id if best is not None else None))
        if self.detail is not None:
            self._keep_detail(not is_benign(result.goal_metadata), best is not None
                              and classify_row(best, self.threshold) is RowOutcome.SUCCESSFUL)
        self.truncated += sum(1 for row in rows if is_truncated(row.response))
        for row in rows:
            if row.kind != BENIGN and row.success is not None:
                self.answers_per_goal[row.result_id] = self.answers_per_goal.get(row.result_id, 0) + 1
        self.codes.add(rows)
        figures = technique_figures(rows, self.threshold, outcomes)
        _merge_techniques(self._techniques, figures)
        if not is_benign(result.goal_metadata):
            self._add_attacked(rows, outcomes, figures)
        else:
            for row, outcome in zip(rows, outcomes, strict=True):
                self._bon_benign.add(row, outcome)

    def _keep_detail(self, attacked: bool, broken: bool) -> None:
        """The newest goal joins the detailed ones; beyond `detail`, the lowest by
        `detail_key` keeps only its compact figures (so at most `detail` goals hold rows)."""
        position = len(self.goals) - 1
        heapq.heappush(self._detailed, (detail_key(attacked, broken, position), position))
        if len(self._detailed) > (self.detail or 0):
            _, dropped = heapq.heappop(self._detailed)
            goal = self.goals[dropped]
            goal.best, goal.shown, goal.detailed = None, [], False

    @property
    def more_goals(self) -> int:
        """Goals kept without detail (beyond `detail`)."""
        return sum(1 for g in self.goals if not g.detailed)

    def _add_attacked(self, rows: list[PipelineRow], outcomes: list[RowOutcome],
                      figures: list[dict[str, Any]]) -> None:
        from reports.figures import group_outcome

        self._attempts += len(rows)
        _merge_techniques(self._report_techniques, figures)
        # per technique and per technique/variant: the outcomes its rows had, and a pending one
        mine: tuple[dict[str, tuple[set[RowOutcome], list[bool]]], ...] = ({}, {})
        techniques, variants = mine
        for row, outcome in zip(rows, outcomes, strict=True):
            name = row.technique or "?"
            for groups, label in ((techniques, name),
                                  (variants, f"{name}/{row.variant}" if row.variant else name)):
                seen, pending = groups.setdefault(label, (set(), [False]))
                seen.add(outcome)
                pending[0] = pending[0] or row.pending
            self.any_bon = self.any_bon or row.technique == "bon"
            self._bon.add(row, outcome)
            for judge, verdict in row.judges.items():
                t = self._tallies.setdefault(judge, [0, 0, 0])
                t[2 if verdict.error or verdict.success is None else 0 if verdict.success else 1] += 1
        for groups, counted in zip(mine, self._outcomes, strict=True):
            for name, (seen, pending) in groups.items():
                counts = counted.setdefault(name, dict.fromkeys(_RATE_KEYS, 0))
                counts[group_outcome(seen, pending[0])] += 1

    def bon_curve(self, n: int | None = None) -> BonCurve:
        """`reports.bon.bon_curve` of every goal's rows (the summary's ASR@k block, benign
        goals' samples included as that reads them), from the tallies kept while the rows
        went by: the curve without reading the run a second time (issue 23)."""
        return self._bon.merged(self._bon_benign).curve(n)

    @property
    def best_rows(self) -> list[PipelineRow]:
        """Each goal's best row (what the terminal's goal table prints), in goal order."""
        return [g.best for g in self.goals if g.best is not None]

    @property
    def shown_rows(self) -> list[PipelineRow]:
        return [row for g in self.goals for row in g.shown]

    def technique_figures(self, *, attacked_only: bool = False) -> list[dict[str, Any]]:
        """`tracking.summary.technique_figures` of every row, summed goal by goal."""
        tallies = self._report_techniques if attacked_only else self._techniques
        return [TechniqueFigures(technique=name, **t, asr=attack_success_rate(
            t["broken"], t["held"])).model_dump() for name, t in sorted(tallies.items())]

    def judge_agreement(self) -> dict[str, Any] | None:
        """Kappa between the panel's judges (None with fewer than two)."""
        return agreement_of(self.codes) if len(self.codes.names) >= 2 else None

    def report_aggregates(self, n: int | None) -> ReportAggregates:
        from reports.figures import JudgeTally, Rate

        return ReportAggregates(
            attempts=self._attempts,
            by_technique=[Rate(label=k, **v) for k, v in sorted(self._outcomes[0].items())],
            by_variant=[Rate(label=k, **v) for k, v in sorted(self._outcomes[1].items())],
            judge_tallies=[JudgeTally(judge=k, yes=v[0], no=v[1], errors=v[2])
                           for k, v in self._tallies.items()],
            techniques=[TechniqueFigures.model_validate(f)
                        for f in self.technique_figures(attacked_only=True)],
            bon=self._bon.curve(n) if self.any_bon else None,
        )
