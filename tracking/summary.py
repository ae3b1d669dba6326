"""Run summary (``TrackingCoordinator.get_summary``) and its one-paragraph log form.

Keys (stable; reports and flows read them):
``run_id``, ``attack_type``, ``status``, ``tracking_enabled``, ``goals_total``,
``successful``, ``failed``, ``errors`` ({agent, framework, total}), ``not_evaluated``,
``asr`` (None when the denominator is 0), ``asr_denominator`` (successful + failed),
``excluded_from_asr`` (error goals; ``errors.attacker`` counts the framework-error goals whose
every attempt was an attacker failure), ``rows`` ({total, successful, failed, agent_errors,
framework_errors, attacker_failures, unmatched}), ``categories`` ({category: {goals, successful, failed, errors,
not_evaluated, asr}}; goals without a category are under ``"uncategorized"``), ``steps``
([{name, type, status, duration_s, error}]), ``cost_usd`` (sum of the rows' ``cost_usd``),
``duration_s``, ``tracking_errors`` ({kind: count}); and, when the run has a benign control set
(goals whose metadata ``kind`` is ``"benign"``), ``over_refusal`` ({prompts, answered, refused,
errors, not_evaluated, rate, judge}) — those goals are left out of every other figure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from tracking.context import Context
from tracking.enums import EvaluationStatusEnum, StatusEnum
from tracking.guard import DEFAULT_LOGGER_NAME
from tracking.rows import PipelineRow
from tracking.step import StepRecord
from tracking.success import RowOutcome, attack_success_rate, classify_row

UNCATEGORIZED = "uncategorized"
#: ``metadata["kind"]`` of a goal from a benign control set: sent plain to measure over-refusal,
#: never part of the ASR (its "successful" status means *answered*, "failed" means *refused*).
BENIGN = "benign"
#: The judge key of a benign control prompt's verdict: success = answered, not = refused.
OVER_REFUSAL = "over-refusal"


def is_benign(metadata: Any) -> bool:
    """True for a goal of the run's benign control set (by its stored metadata)."""
    return isinstance(metadata, dict) and metadata.get("kind") == BENIGN


def over_refusal_counts(contexts: Sequence[Context]) -> dict[str, Any] | None:
    """The benign control set's outcome: answered, refused (false refusals), errors; None if the
    run has no benign goals. ``rate`` = refused / (answered + refused), errors excluded."""
    benign = [c for c in contexts if is_benign(c.metadata)]
    if not benign:
        return None
    c = _goal_counts(benign)
    judged = c["successful"] + c["failed"]
    return {
        "prompts": c["goals"],
        "answered": c["successful"],
        "refused": c["failed"],
        "errors": c["agent"] + c["framework"],
        "not_evaluated": c["not_evaluated"],
        "rate": c["failed"] / judged if judged else None,
        "judge": "over-refusal",
    }


def _goal_counts(contexts: Sequence[Context]) -> dict[str, int]:
    counts = {status: 0 for status in EvaluationStatusEnum}
    for ctx in contexts:
        counts[ctx.evaluation_status] += 1
    successful = counts[EvaluationStatusEnum.SUCCESSFUL_JAILBREAK]
    failed = counts[EvaluationStatusEnum.FAILED_JAILBREAK]
    agent = counts[EvaluationStatusEnum.ERROR_AGENT_RESPONSE]
    framework = counts[EvaluationStatusEnum.ERROR_TEST_FRAMEWORK]
    return {
        "goals": len(contexts),
        "successful": successful,
        "failed": failed,
        "agent": agent,
        "framework": framework,
        "not_evaluated": counts[EvaluationStatusEnum.NOT_EVALUATED],
    }


def build_summary(
    *,
    run_id: str | None,
    attack_type: str,
    status: StatusEnum | None,
    enabled: bool,
    contexts: Sequence[Context],
    steps: Sequence[StepRecord],
    goal_rows: Sequence[tuple[dict[str, int], float]],
    unmatched_rows: int,
    duration_s: float,
    tracking_errors: dict[str, int],
) -> dict[str, Any]:
    refusals = over_refusal_counts(contexts)
    contexts = [c for c in contexts if not is_benign(c.metadata)]  # never in the ASR
    totals = _goal_counts(contexts)
    by_category: dict[str, list[Context]] = {}
    for ctx in contexts:
        by_category.setdefault(ctx.category or UNCATEGORIZED, []).append(ctx)
    categories = {}
    for category in sorted(by_category):
        c = _goal_counts(by_category[category])
        categories[category] = {
            "goals": c["goals"],
            "successful": c["successful"],
            "failed": c["failed"],
            "errors": c["agent"] + c["framework"],
            "not_evaluated": c["not_evaluated"],
            "asr": attack_success_rate(c["successful"], c["failed"]),
        }
    rows = {"successful": 0, "failed": 0, "agent_error": 0, "framework_error": 0,
            "attacker_failure": 0}
    cost = 0.0
    attacker_goals = 0  # goals whose every row was an attacker failure (nothing sent)
    for counts, goal_cost in goal_rows:
        for key in rows:
            rows[key] += counts.get(key, 0)
        total = sum(counts.values())
        attacker_goals += bool(total) and counts.get("attacker_failure", 0) == total
        cost += goal_cost
    return {
        "run_id": run_id,
        "attack_type": attack_type,
        "status": status.value if status is not None else None,
        "tracking_enabled": enabled,
        "goals_total": totals["goals"],
        "successful": totals["successful"],
        "failed": totals["failed"],
        "errors": {
            "agent": totals["agent"],
            "framework": totals["framework"],
            "total": totals["agent"] + totals["framework"],
            "attacker": attacker_goals,
        },
        "not_evaluated": totals["not_evaluated"],
        "asr": attack_success_rate(totals["successful"], totals["failed"]),
        "asr_denominator": totals["successful"] + totals["failed"],
        "excluded_from_asr": totals["agent"] + totals["framework"],
        "rows": {
            "total": sum(rows.values()),
            "successful": rows["successful"],
            "failed": rows["failed"],
            "agent_errors": rows["agent_error"],
            "framework_errors": rows["framework_error"],
            "attacker_failures": rows["attacker_failure"],
            "unmatched": unmatched_rows,
        },
        "categories": categories,
        "steps": [
            {
                "name": s.name,
                "type": s.step_type,
                "status": s.status.value,
                "duration_s": round(s.duration_s, 6),
                "error": s.error_type,
            }
            for s in steps
        ],
        "cost_usd": round(cost, 10),
        "duration_s": round(duration_s, 6),
        "tracking_errors": dict(sorted(tracking_errors.items())),
        **({"over_refusal": refusals} if refusals is not None else {}),
    }


class _Stored(BaseModel):
    """A part of the stored summary JSON: every field optional (old rows lack new fields),
    unknown keys kept (a newer writer's fields survive a read and re-write)."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ErrorCounts(_Stored):
    agent: int = 0
    framework: int = 0
    total: int = 0
    #: of `framework`: goals whose every attempt was an attacker failure (nothing was sent)
    attacker: int = 0


class RowCounts(_Stored):
    total: int = 0
    successful: int = 0
    failed: int = 0
    agent_errors: int = 0
    framework_errors: int = 0
    #: attempts the attacker model failed to write: never sent, neither held nor broken
    attacker_failures: int = 0
    unmatched: int = 0


class GoalCounts(_Stored):
    """Goals of one category (or the whole run): what an ASR is computed from."""

    goals: int = 0
    successful: int = 0
    failed: int = 0
    errors: int = 0
    not_evaluated: int = 0
    asr: float | None = None


class TechniqueFigures(_Stored):
    """One technique's outcome over the goals it was tried on (a goal is broken by it if any of
    its attempts succeeded, held if any was judged and none did). Attempts the attacker failed
    to write and target errors are counted apart and never in the ASR; `baseline` includes the
    plain goal sent after an attacker failure (`on_attacker_failure: send_goal`)."""

    technique: str = ""
    goals: int = 0
    attempts: int = 0
    broken: int = 0
    held: int = 0
    attacker_failures: int = 0
    target_errors: int = 0
    asr: float | None = None


def technique_figures(rows: Sequence[PipelineRow], success_threshold: float,
                      outcomes: Sequence[RowOutcome] | None = None) -> list[dict[str, Any]]:
    """Per technique, from a run's final rows (benign control prompts left out); `outcomes`:
    the rows' `classify_row`s, when known already."""
    by_goal: dict[str, dict[tuple[int | None, str], list[RowOutcome]]] = {}
    attempts: dict[str, dict[str, int]] = {}
    for i, row in enumerate(rows):
        if row.kind == BENIGN:
            continue
        name = row.technique or "?"
        outcome = outcomes[i] if outcomes is not None else classify_row(row, success_threshold)
        tally = attempts.setdefault(name, {"attempts": 0, "attacker": 0, "target": 0})
        tally["attempts"] += 1
        tally["attacker"] += outcome is RowOutcome.ATTACKER_FAILURE
        tally["target"] += outcome is RowOutcome.AGENT_ERROR
        by_goal.setdefault(name, {}).setdefault((row.goal_index, row.goal_id or ""), []).append(
            outcome)
    figures = []
    for name in sorted(by_goal):
        broken = held = 0
        for outcomes in by_goal[name].values():
            if RowOutcome.SUCCESSFUL in outcomes:
                broken += 1
            elif RowOutcome.FAILED in outcomes:
                held += 1
        tally = attempts[name]
        figures.append(TechniqueFigures(
            technique=name, goals=len(by_goal[name]), attempts=tally["attempts"],
            broken=broken, held=held, attacker_failures=tally["attacker"],
            target_errors=tally["target"], asr=attack_success_rate(broken, held),
        ).model_dump())
    return figures


class StepSummary(_Stored):
    name: str | None = None
    type: str | None = None
    status: str | None = None
    duration_s: float | None = None
    error: str | None = None


class OverRefusal(_Stored):
    """The benign control set's outcome (``over_refusal_counts``)."""

    prompts: int = 0
    answered: int = 0
    refused: int = 0
    errors: int = 0
    not_evaluated: int = 0
    rate: float | None = None
    judge: str = OVER_REFUSAL


class CorrectedRate(_Stored):
    """One rate corrected for the judge's error (``judges.correction``): ``x`` positives of
    ``n`` judged; ``value``/``low``/``high`` None when there is no corrected figure."""

    x: int = 0
    n: int = 0
    value: float | None = None
    low: float | None = None
    high: float | None = None


#: ``JudgeCorrection.status`` values.
CORRECTED = "corrected"
UNSUPPORTED = "unsupported"  # the lower 95% bound of Youden's J is too low
NO_COUNTS = "no_counts"  # the validation stored no confusion counts
NOT_VALIDATED = "not_validated"  # the panel has no validation at all


class JudgeCorrection(_Stored):
    """A rate corrected for judge error, and which validation the correction used. Computed
    once when the run ends (``flows.run_record.finish_run``) and stored, so every report
    prints the same figures. ``positive`` is the judge's positive class: ``success`` for the
    ASR, ``refusal`` for the over-refusal detector (its rate is the true refusal rate)."""

    status: str = NOT_VALIDATED
    panel: str | None = None
    origin: str | None = None  # "this store" or "shipped with siegeflow"
    source: str | None = None  # the validation's short source
    stratum: str | None = None  # the data set whose counts were used; None: pooled
    validation_n: int | None = None
    positive: str = "success"
    tp: int | None = None
    fp: int | None = None
    tn: int | None = None
    fn: int | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    youden: float | None = None
    youden_low: float | None = None
    min_youden_low: float | None = None
    #: Most judged answers any goal had: above 1, a goal is broken if any answer is judged so,
    #: and per-answer error rates understate per-goal false positives (docs/judges.md).
    answers_per_goal: int | None = None
    method: str | None = None
    overall: CorrectedRate | None = None
    categories: dict[str, CorrectedRate] = {}


class BestOfNSummary(_Stored):
    """A Best-of-N run's ASR@k block (``reports.bon.curve_summary``): ``asr_at`` is a list of
    [k, ASR@k] pairs (JSON has no int-keyed maps)."""

    n: int | None = None
    goals: int = 0
    broken: int = 0
    error_goals: int = 0
    samples: int = 0
    sample_errors: int = 0
    asr_at_n: float | None = None
    asr_at: list[tuple[int, float | None]] = []
    method: str | None = None


class RunSummary(_Stored):
    """A run's summary as flows return it and store it on the run (JSON, ``as_dict``).

    ``get_summary``'s keys (above), then what every flow adds when it ends the run
    (``flows.run_record.finish_run``), then what one kind of flow adds. Read a stored one with
    ``RunSummary.parse``: missing fields take their defaults, so summaries written by older
    versions stay readable.
    """

    _final_rows: list[PipelineRow] | None = PrivateAttr(default=None)

    run_id: str | None = None
    attack_type: str | None = None
    status: str | None = None
    tracking_enabled: bool = True
    goals_total: int = 0
    successful: int = 0
    failed: int = 0
    errors: ErrorCounts = ErrorCounts()
    not_evaluated: int = 0
    asr: float | None = None
    asr_denominator: int = 0
    excluded_from_asr: int = 0
    rows: RowCounts = RowCounts()
    categories: dict[str, GoalCounts] = {}
    steps: list[StepSummary] = []
    cost_usd: float = 0.0
    duration_s: float | None = None
    tracking_errors: dict[str, int] = {}
    over_refusal: OverRefusal | None = None
    error: str | None = None
    # every flow, at the end of the run
    stop_reason: str | None = None
    success_threshold: float | None = None
    judge_rule: str | None = None
    judge_keys: list[str] = []
    truncated_answers: int = 0
    judge_agreement: dict[str, Any] | None = None
    warnings: list[str] = []
    cost_breakdown: dict[str, float] | None = None  # target_usd, judges_usd, attacker_usd, total_usd
    attacker_cost_usd: float | None = None
    report_path: str | None = None
    asr_corrected: JudgeCorrection | None = None  # the ASR corrected for judge error
    over_refusal_corrected: JudgeCorrection | None = None  # the false-refusal rate, corrected
    techniques: list[TechniqueFigures] = []  # per technique: attempts, broken, held, failures
    # one kind of flow: Best-of-N attack, optimize, sharded attack
    bon: BestOfNSummary | None = None
    optimizer: str | None = None
    harness: str | None = None
    runs_total: int | None = None
    stop_reasons: dict[str, int] | None = None
    optimizer_errors: int | None = None
    shards: int | None = None
    failed_shards: list[int] | None = None
    shard_flow_runs: dict[str, str] | None = None

    @classmethod
    def parse(cls, stored: Mapping[str, Any] | None) -> RunSummary:
        """A stored summary; a field whose stored value does not fit is dropped (logged), so
        one odd old value never hides the rest of a run's figures."""
        data = dict(stored or {})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]}
            logging.getLogger(DEFAULT_LOGGER_NAME).warning(
                "run summary: ignoring unreadable field(s) %s", sorted(bad))
            return cls.model_validate({k: v for k, v in data.items() if k not in bad})

    def updated(self, **changes: Any) -> RunSummary:
        """A copy with these fields set (validated)."""
        return RunSummary.model_validate({**self.as_dict(), **changes})

    @property
    def final_rows(self) -> list[PipelineRow] | None:
        """The run's final rows, in the process whose flow finished the run (so the command
        that ran it does not read them again); None elsewhere: they are never stored here."""
        return self._final_rows

    def with_rows(self, rows: list[PipelineRow]) -> RunSummary:
        copy = self.model_copy()
        copy._final_rows = rows
        return copy

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: exactly the fields that were set, as stored on the run."""
        return self.model_dump(mode="json", exclude_unset=True)


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines for the log."""
    asr = summary["asr"]
    asr_text = "n/a" if asr is None else f"{asr:.1%}"
    errors = summary["errors"]
    lines = [
        f"Run {summary['run_id']} ({summary['attack_type']}): {summary['status']}",
        f"  goals {summary['goals_total']}: {summary['successful']} successful, "
        f"{summary['failed']} failed, {errors['total']} errors "
        f"(agent {errors['agent']}, framework {errors['framework']}), "
        f"{summary['not_evaluated']} not evaluated",
        f"  ASR {asr_text} ({summary['successful']}/{summary['asr_denominator']}; "
        f"{summary['excluded_from_asr']} error goals excluded)",
        f"  cost ${summary['cost_usd']:.4f}, duration {summary['duration_s']:.1f}s",
    ]
    for name, cat in summary["categories"].items():
        cat_asr = "n/a" if cat["asr"] is None else f"{cat['asr']:.1%}"
        lines.append(
            f"  [{name}] {cat['goals']} goals, {cat['successful']} successful, "
            f"{cat['failed']} failed, {cat['errors']} errors, ASR {cat_asr}"
        )
    for step in summary["steps"]:
        lines.append(f"  step {step['name']}: {step['status']} in {step['duration_s']:.2f}s")
    if summary["tracking_errors"]:
        lines.append(f"  tracking errors: {summary['tracking_errors']}")
    return "\n".join(lines)
