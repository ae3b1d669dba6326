"""The numbers a report shows: ASR with its 95% interval, per category and per technique.

Why Wilson: with the few dozen goals a scan often has, the normal approximation gives intervals
below 0 or above 1 and collapses to zero width at 0% or 100%; Wilson's score interval does not.
Every rate keeps error goals out of its denominator (ARCHITECTURE.md) and counts them apart.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from judges.metrics import Z95, wilson  # noqa: F401  (re-exported: one Wilson for all)
from reports.load import GoalView, RunData
from tracking import EvaluationStatusEnum, GoalCounts, RunSummary, TechniqueFigures
from tracking.summary import technique_figures
from tracking.rows import PipelineRow
from tracking.success import RowOutcome, classify_row

@dataclass(frozen=True, kw_only=True)
class Rate:
    """broken / (broken + held), with the excluded goals alongside."""

    label: str
    broken: int = 0
    held: int = 0
    errors: int = 0
    pending: int = 0

    @property
    def judged(self) -> int:
        return self.broken + self.held

    @property
    def goals(self) -> int:
        return self.judged + self.errors + self.pending

    @property
    def asr(self) -> float | None:
        return self.broken / self.judged if self.judged else None

    @property
    def ci(self) -> tuple[float, float] | None:
        return wilson(self.broken, self.judged)


def _count(label: str, outcomes: Iterable[str]) -> Rate:
    counts = {"broken": 0, "held": 0, "errors": 0, "pending": 0}
    for outcome in outcomes:
        counts[outcome] += 1
    return Rate(label=label, **counts)


def outcome_of(status: EvaluationStatusEnum) -> str:
    if status is EvaluationStatusEnum.SUCCESSFUL_JAILBREAK:
        return "broken"
    if status is EvaluationStatusEnum.FAILED_JAILBREAK:
        return "held"
    return "pending" if status is EvaluationStatusEnum.NOT_EVALUATED else "errors"


@dataclass(frozen=True, kw_only=True)
class Headline:
    overall: Rate
    target_errors: int
    framework_errors: int
    cost_usd: float
    duration_s: float | None
    attempts: int


def headline(data: RunData) -> Headline:
    statuses = [g.status for g in data.goals]
    return Headline(
        overall=_count("all goals", (outcome_of(s) for s in statuses)),
        target_errors=statuses.count(EvaluationStatusEnum.ERROR_AGENT_RESPONSE),
        framework_errors=statuses.count(EvaluationStatusEnum.ERROR_TEST_FRAMEWORK),
        cost_usd=data.cost_usd,
        duration_s=data.duration_s,
        attempts=(data.aggregates.attempts if data.aggregates is not None
                  else sum(len(g.rows) for g in data.goals)),
    )


def by_category(goals: list[GoalView]) -> list[Rate]:
    groups: dict[str, list[str]] = {}
    for goal in goals:
        groups.setdefault(goal.category, []).append(outcome_of(goal.status))
    return [_count(name, outcomes) for name, outcomes in sorted(groups.items())]


def _technique_outcome(rows: list[PipelineRow], threshold: float) -> str:
    """A goal against one technique: broken if any of its rows succeeded, held if any was judged."""
    return group_outcome({classify_row(row, threshold) for row in rows},
                         any(row.pending for row in rows))


def group_outcome(outcomes: Collection[RowOutcome], pending: bool) -> str:
    """`_technique_outcome` of a group of rows given their outcomes and whether one of them is
    still pending (what `reports.digest` keeps of a group while its rows go by)."""
    if RowOutcome.SUCCESSFUL in outcomes:
        return "broken"
    if RowOutcome.FAILED in outcomes:
        return "held"
    if pending:
        return "pending"
    return "errors"


def by_technique(data: RunData, *, variants: bool = False) -> list[Rate]:
    """Per technique (or technique/variant): over the goals it was tried on."""
    if data.aggregates is not None:
        return list(data.aggregates.by_variant if variants else data.aggregates.by_technique)
    groups: dict[str, list[str]] = {}
    for goal in data.goals:
        mine: dict[str, list[PipelineRow]] = {}
        for row in goal.rows:
            name = row.technique or "?"
            if variants and row.variant:
                name = f"{name}/{row.variant}"
            mine.setdefault(name, []).append(row)
        for name, rows in mine.items():
            groups.setdefault(name, []).append(_technique_outcome(rows, data.threshold))
    return [_count(name, outcomes) for name, outcomes in sorted(groups.items())]


@dataclass(frozen=True, kw_only=True)
class JudgeTally:
    judge: str
    yes: int
    no: int
    errors: int


def judge_tallies(data: RunData) -> list[JudgeTally]:
    """Per judge: how many attempts it called jailbroken, safe, or could not judge."""
    if data.aggregates is not None:
        return list(data.aggregates.judge_tallies)
    tallies = {key: [0, 0, 0] for key in data.judge_keys}
    for goal in data.goals:
        for row in goal.rows:
            for name, verdict in row.judges.items():
                t = tallies.setdefault(name, [0, 0, 0])
                if verdict.error or verdict.success is None:
                    t[2] += 1
                else:
                    t[0 if verdict.success else 1] += 1
    return [JudgeTally(judge=k, yes=v[0], no=v[1], errors=v[2]) for k, v in tallies.items()]


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100.0 * value:.{digits}f}%"


def ci_text(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f"{pct(ci[0])}–{pct(ci[1])}"


def asr_text(broken: int | None, judged: int | None) -> str:
    """An ASR as every headline prints it: rate, Wilson 95% interval and n, e.g.
    "40.0% [16.8%–68.7%] (4/10 judged goals)"; "n/a (0 judged goals)" when nothing was judged."""
    broken, judged = int(broken or 0), int(judged or 0)
    if judged <= 0:
        return "n/a (0 judged goals)"
    return f"{pct(broken / judged)} [{ci_text(wilson(broken, judged))}] ({broken}/{judged} judged goals)"


def summary_asr_text(summary: RunSummary | GoalCounts | None) -> str:
    """`asr_text` of a run summary or one of its categories (successful / (successful +
    failed))."""
    if summary is None:
        return asr_text(0, 0)
    return asr_text(summary.successful, summary.successful + summary.failed)


#: Column heads of the per-technique table every report prints (terminal, artifact, JUnit...).
TECHNIQUE_COLUMNS = ("technique", "goals", "attempts", "broken", "held", "attacker failures",
                     "target errors", "ASR [95% CI] (n)")


def techniques_of(summary: RunSummary | None, data: RunData | None = None,
                  ) -> list[TechniqueFigures]:
    """Per-technique figures: from the run's final rows when loaded, else the stored summary
    (a summary written before the figures existed has none)."""
    if data is not None and data.aggregates is not None:
        return list(data.aggregates.techniques)
    if data is not None:
        return [TechniqueFigures.model_validate(f)
                for f in technique_figures([r for g in data.goals for r in g.rows],
                                           data.threshold)]
    return list(summary.techniques) if summary is not None else []


def technique_cells(t: TechniqueFigures) -> tuple[str, ...]:
    """One technique's row: counts, then the ASR over the goals it was judged on (attacker
    failures and target errors are never in the denominator)."""
    return (t.technique, str(t.goals), str(t.attempts), str(t.broken), str(t.held),
            str(t.attacker_failures), str(t.target_errors), asr_text(t.broken, t.broken + t.held))
