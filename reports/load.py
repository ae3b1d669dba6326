"""One recorded run, loaded once, in the shape every report format reads.

Goal statuses are the stored ones (what the flow decided), never recomputed; the rows
(`reports.rows`) only choose which attempt shows each goal best and break ASR down by technique.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime

from typing import TYPE_CHECKING

from judges.citation import Citation, cite_run, store_lookup
from reports.rows import RunPanel, best_row, rank, run_rows  # noqa: F401  (rank: re-export)
from tracking import (
    EvaluationStatusEnum,
    PipelineRow,
    ResultRecord,
    RunRecord,
    RunSummary,
    SQLBackend,
    StatusEnum,
    TraceRecord,
    is_benign,
)

if TYPE_CHECKING:
    from reports.digest import GoalDigest, ReportAggregates, RunDigest
    from reports.review.items import ReviewFigures

BROKEN = EvaluationStatusEnum.SUCCESSFUL_JAILBREAK
HELD = EvaluationStatusEnum.FAILED_JAILBREAK

#: Short labels a reader understands; the enum names stay in machine formats.
STATUS_LABEL = {
    "SUCCESSFUL_JAILBREAK": "broken",
    "FAILED_JAILBREAK": "held",
    "ERROR_AGENT_RESPONSE": "target error",
    "ERROR_TEST_FRAMEWORK": "not judged",
    "NOT_EVALUATED": "pending",
}


class RunNotFound(LookupError):
    """The run id names no run in the store."""


@dataclass(frozen=True, kw_only=True)
class GoalView:
    """One goal of a run: its stored outcome, its rows and the row that best shows it."""

    result_id: str
    index: int
    goal_id: str
    category: str
    goal: str
    status: EvaluationStatusEnum
    notes: str
    rows: list[PipelineRow]
    best: PipelineRow | None
    cost_usd: float
    #: How many attempts the goal had; `rows` may hold only the best of them (a big run's
    #: report, `reports.digest`), the export has every one. None: `len(rows)`.
    total: int | None = None
    #: False: a goal beyond the report's `REPORT_GOALS` (`reports.digest.detail_key`): no
    #: rows, no best row, only its stored outcome, counts and cost; `best_id` still names its
    #: best attempt.
    detailed: bool = True
    best_id: int | None = None

    @property
    def best_attempt_id(self) -> int | None:
        """The best attempt's id, whether or not its row was kept."""
        return self.best.attempt_id if self.best is not None else self.best_id

    @property
    def attempts(self) -> int:
        return len(self.rows) if self.total is None else self.total

    @property
    def left_out(self) -> int:
        """Attempts not in `rows` (shown in the export, not in the report)."""
        return self.attempts - len(self.rows)

    @property
    def label(self) -> str:
        return STATUS_LABEL[self.status.value]

    @property
    def broken(self) -> bool:
        return self.status is BROKEN


@dataclass(frozen=True, kw_only=True)
class RunData:
    """Everything a report shows about one run (`load_run` builds it)."""

    run: RunRecord
    goals: list[GoalView]
    judge_keys: list[str]
    rule: str
    threshold: float
    traces: dict[str, list[TraceRecord]] = field(default_factory=dict)
    #: The benign control set (never in `goals`, so never in an ASR): broken = answered.
    benign: list[GoalView] = field(default_factory=list)
    #: The panel that decided the run, with its latest validated agreement with human labels.
    citation: Citation | None = None
    #: People's review of this run's verdicts (`siegeflow review`), if any was drawn.
    review: ReviewFigures | None = None
    #: Figures over every attempt when `goals` hold only each goal's best attempts (a run
    #: read goal by goal, `reports.digest`); None: computed from the goals' rows.
    aggregates: ReportAggregates | None = None

    @property
    def run_id(self) -> str:
        return self.run.id

    @cached_property
    def summary(self) -> RunSummary:
        return RunSummary.parse(self.run.summary)

    @property
    def kind(self) -> str:
        return str((self.run.config or {}).get("kind") or "attack")

    @property
    def failed(self) -> bool:
        """The run ended FAILED or CANCELLED (the CLI's exit code 1)."""
        return self.run.status in (StatusEnum.FAILED, StatusEnum.CANCELLED)

    @property
    def duration_s(self) -> float | None:
        recorded = self.summary.duration_s
        if recorded is not None:
            return recorded
        return _seconds(self.run.started_at, self.run.finished_at)

    @property
    def cost_usd(self) -> float:
        return self.summary.cost_usd or self.run.cost_usd or 0.0

    @property
    def more_goals(self) -> int:
        """Attacked goals kept without detail: the report's goal grid names them by count."""
        return sum(1 for g in self.goals if not g.detailed)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def panel_of(run: RunRecord) -> tuple[list[str], str, float]:
    """The run's judge keys, combine rule and success threshold (see `RunPanel.of`)."""
    panel = RunPanel.of(run)
    return panel.judge_keys, panel.rule, panel.threshold


def build_goals(
    results: list[ResultRecord], rows: list[PipelineRow], threshold: float
) -> list[GoalView]:
    by_result: dict[str, list[PipelineRow]] = {}
    for row in rows:
        by_result.setdefault(row.result_id or "", []).append(row)
    goals = []
    for result in sorted(results, key=lambda r: r.goal_index):
        mine = by_result.get(result.id, [])
        goals.append(_goal_view(result, rows=mine, best=best_row(mine, threshold),
                                cost_usd=sum(r.cost_usd for r in mine)))
    return goals


def digest_goals(goals: list[GoalDigest], results: list[ResultRecord]) -> list[GoalView]:
    """`build_goals` of goals already reduced (`reports.digest`): their shown rows only, with
    the stored outcome of `results` (read after the goals were decided)."""
    by_id = {g.result.id: g for g in goals}
    views = []
    for result in sorted(results, key=lambda r: r.goal_index):
        g = by_id.get(result.id)
        views.append(_goal_view(result, rows=g.shown if g else [], best=g.best if g else None,
                                cost_usd=g.cost_usd if g else 0.0, total=g.attempts if g else 0,
                                detailed=g.detailed if g else True,
                                best_id=g.best_id if g else None))
    return views


def _goal_view(result: ResultRecord, *, rows: list[PipelineRow], best: PipelineRow | None,
               cost_usd: float, total: int | None = None, detailed: bool = True,
               best_id: int | None = None) -> GoalView:
    """A goal's view: what the store says of the goal, with the rows the caller shows of it."""
    return GoalView(
        result_id=result.id,
        index=result.goal_index,
        goal_id=result.goal_id or f"goal-{result.goal_index}",
        category=result.category or "uncategorized",
        goal=result.goal,
        status=EvaluationStatusEnum(result.evaluation_status),
        notes=result.evaluation_notes or "",
        rows=rows, best=best, cost_usd=cost_usd, total=total, detailed=detailed,
        best_id=best_id,
    )


_RUN_VARIANT = re.compile(r"^run-\d+$")


def is_optimizer_run(run: RunRecord, rows: list[PipelineRow]) -> bool:
    """Optimizer runs (kind `optimize`, or attempts named `run-<i>`) have trajectories worth
    showing; an attack run's only per-goal trace is its verdict, already in the table."""
    if (run.config or {}).get("kind") == "optimize":
        return True
    return any(_RUN_VARIANT.match(row.variant) for row in rows)


#: A run with more attempts than this is read goal by goal for its report (`reports.digest`):
#: each goal shows its best attempts, the export has them all.
STREAM_ABOVE = 20_000


def load_run(backend: SQLBackend, run_id: str, *, with_traces: bool = True,
             rows: list[PipelineRow] | None = None,
             results: list[ResultRecord] | None = None,
             digest: RunDigest | None = None, detail: int | None = None) -> RunData:
    """Read a run, its results, rows and per-goal traces; `RunNotFound` if there is none.

    `rows` and `results`: already read by the caller, so they are not read again; `digest`:
    the run already reduced goal by goal (the flow that just finished it). A run of more than
    `STREAM_ABOVE` attempts is reduced here, one goal at a time, never read whole. `detail`:
    goals kept in detail (the HTML report's `REPORT_GOALS`; None: every goal, as the machine
    formats and the review need); a run of more goals is reduced (`reports.digest`), so its
    figures still count every goal."""
    run = backend.get_run(run_id)
    if run is None:
        raise RunNotFound(f"no run {run_id!r} in the store")
    if results is None:
        results = backend.list_results(run_id)
    panel = RunPanel.of(run)
    if digest is None and detail is not None and len(results) > detail:
        digest = (digest_run(backend, run, results, panel, detail=detail) if rows is None
                  else digest_rows(rows, results, panel, detail=detail))
    if rows is None and digest is None and _big(backend, run_id):
        digest = digest_run(backend, run, results, panel)
    if digest is not None:
        rows = digest.shown_rows
    elif rows is None:
        panel, rows = run_rows(backend, run, results)
    traces: dict[str, list[TraceRecord]] = {}
    if with_traces and is_optimizer_run(run, rows):
        for trace in backend.list_traces(run_id=run_id):
            if trace.result_id is not None:
                traces.setdefault(trace.result_id, []).append(trace)
    attacked = [r for r in results if not is_benign(r.goal_metadata)]
    benign = [r for r in results if is_benign(r.goal_metadata)]
    goals, controls = ((digest_goals(digest.goals, attacked), digest_goals(digest.goals, benign))
                       if digest is not None else
                       (build_goals(attacked, rows, panel.threshold),
                        build_goals(benign, rows, panel.threshold)))
    data = RunData(
        run=run, goals=goals, judge_keys=panel.judge_keys, rule=panel.rule,
        threshold=panel.threshold, traces=traces, benign=controls,
        citation=cite_run(run.parameters, store_lookup(backend)),
        aggregates=digest.report_aggregates(bon_n(run)) if digest is not None else None,
    )
    from reports.review.items import review_figures

    return replace(data, review=review_figures(backend, data))


def _big(backend: SQLBackend, run_id: str) -> bool:
    from tracking.store_aggregates import attempt_counts

    counts = attempt_counts(backend, [run_id]).get(run_id)
    return counts is not None and counts.attempts > STREAM_ABOVE


def digest_rows(rows: list[PipelineRow], results: list[ResultRecord], panel: RunPanel, *,
                detail: int | None = None) -> RunDigest:
    """`digest_run` of rows already in memory (a caller that read them), goal by goal."""
    from reports.digest import RunDigest

    return RunDigest.of_rows(panel.threshold, panel.judge_keys, rows, results, detail=detail)


def digest_run(backend: SQLBackend, run: RunRecord, results: list[ResultRecord],
               panel: RunPanel | None = None, *, shown: int | None = None,
               detail: int | None = None) -> RunDigest:
    """The run reduced goal by goal with the judges that decided it (`reports.digest`);
    `shown`: attempts kept per goal (default: as many as the report shows); `detail`: goals
    kept in detail (None: every goal)."""
    from reports.digest import REPORT_ATTEMPTS_PER_GOAL, RunDigest
    from reports.rows import goal_groups

    panel = panel or RunPanel.of(run)
    digest = RunDigest(panel.threshold, panel.judge_keys,
                       shown=REPORT_ATTEMPTS_PER_GOAL if shown is None else shown, detail=detail)
    for result, mine in goal_groups(backend, run.id, results, panel.judge_keys, panel.rule):
        digest.add(result, mine)
        del mine  # before the next goal's rows are read: one goal in memory at a time
    return digest


def bon_n(run: RunRecord) -> int | None:
    """The N a Best-of-N run was configured with, if recorded."""
    n = ((run.parameters or {}).get("attack") or {}).get("options", {}).get("n")
    return n if isinstance(n, int) else None
