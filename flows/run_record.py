"""Opening, keeping alive and closing a siegeflow run — shared by the attack and optimize flows.

`open_run` creates the run and one result per goal (or re-attaches to a run being resumed,
re-opening only the goals an earlier crash finalized as errors); `start_heartbeat` keeps
`heartbeat_at` fresh so a killed run is detectable as stale; `publish_results` writes the
summary on the run and the Prefect artifacts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from flows.config import GoalsSpec, JudgePanelSpec
from flows.naming import name_flow_run
from goals import Goal, benign_goals_warning
from reports.digest import REPORT_GOALS, RunDigest
from reports.rows import Recorded, StoredRows, goal_groups
from settings import current_settings
from targets import TargetConfig
from tasks.context import GoalRow, RunRef
from tracking import (
    BENIGN,
    AttemptRecord,
    EvaluationStatusEnum,
    GoalSpec,
    JudgmentRecord,
    PipelineRow,
    ResultRecord,
    ResultUpdate,
    RunSummary,
    SQLBackend,
    StatusEnum,
    StepSummary,
    TrackingCoordinator,
    default_db_url,
    get_backend,
    is_benign,
)
from tracking.best_attempts import record_best_attempts, without_best


class RunNotFoundError(LookupError):
    """`resume_run_id` names no run in the store."""


@dataclass(frozen=True, kw_only=True)
class OpenedRun:
    ref: RunRef
    coordinator: TrackingCoordinator
    goal_rows: list[GoalRow]
    spent_usd: float
    resumed: bool


def _goal_spec(goal: Goal, *, index: int | None = None, benign: bool = False) -> GoalSpec:
    """A loaded goal as the store records it (`target`, `source`, `context` in its metadata)."""
    metadata = {"target": goal.target, "source": goal.source, "context": goal.context}
    if benign:
        metadata["kind"] = BENIGN
    return GoalSpec(text=goal.text, index=goal.index if index is None else index,
                    goal_id=goal.id, category=goal.category, metadata=metadata)


def goal_specs(goals: GoalsSpec, benign: GoalsSpec | None,
               loaded: list[Goal] | None = None) -> list[GoalSpec]:
    """The run's goals, then its benign control goals (numbered after them, kind "benign").
    `loaded`: the run's goals already loaded (with their selection) by the caller."""
    attack = goals.load() if loaded is None else loaded
    specs = [_goal_spec(g) for g in attack]
    start = max((g.index for g in attack), default=-1) + 1
    for i, goal in enumerate(benign.load() if benign is not None else []):
        specs.append(_goal_spec(goal, index=start + i, benign=True))
    return specs


def attach_coordinator(
    backend: SQLBackend, run_id: str, *, logger: logging.Logger, reopen: bool = False
) -> TrackingCoordinator:
    """A coordinator over a run that already exists (a resume, or a failure hook).

    Goals are re-registered from the stored results (by index, so nothing is duplicated) and
    keep their stored status. With `reopen` (a resume), every goal goes back to NOT_EVALUATED
    and the run to RUNNING: finalization recomputes each status from the recorded completions
    and verdicts, which a resume only adds to — so a goal broken before stays broken.
    """
    run = backend.get_run(run_id)
    if run is None:
        raise RunNotFoundError(f"no run {run_id!r} in this store")
    results = backend.list_results(run_id)
    if reopen:
        backend.update_results(
            [
                ResultUpdate(result_id=r.id, evaluation_status=EvaluationStatusEnum.NOT_EVALUATED,
                             evaluation_notes="re-opened by resume",
                             metrics=without_best(r.metrics))
                for r in results
                if r.evaluation_status is not EvaluationStatusEnum.NOT_EVALUATED
            ],
            only_if_not_evaluated=False,
        )
        backend.update_run(run_id, status=StatusEnum.RUNNING)
        results = backend.list_results(run_id)
    goals = [
        GoalSpec(text=r.goal, index=r.goal_index, goal_id=r.goal_id, category=r.category,
                 metadata=r.goal_metadata)
        for r in results
    ]
    return TrackingCoordinator.create(
        backend, run_id, logger=logger, attack_type=run.attack_type, goals=goals
    )


@dataclass(frozen=True, kw_only=True)
class Spend:
    """A run's USD spend by who was paid: the target, the judges, and attacker models called by
    techniques (prompts made by an attacker, answers translated back for the judges)."""

    target_usd: float = 0.0
    judges_usd: float = 0.0
    attacker_usd: float = 0.0

    @property
    def total_usd(self) -> float:
        return self.target_usd + self.judges_usd + self.attacker_usd

    def as_dict(self) -> dict[str, float]:
        return {"target_usd": self.target_usd, "judges_usd": self.judges_usd,
                "attacker_usd": self.attacker_usd, "total_usd": self.total_usd}


def spend_of(attempts: Iterable[AttemptRecord], judgments: Iterable[JudgmentRecord]) -> Spend:
    """Spend recorded on attempts (completion cost; the attacker's share that made the prompt,
    `generation_cost_usd` in its metadata) and judgments (judge cost; attacker decoding)."""
    return _spend(((a.cost_usd, a.meta) for a in attempts),
                  ((j.cost_usd, j.attacker_cost_usd) for j in judgments))


def _spend(attempts: Iterable[tuple[float | None, Any]],
           judgments: Iterable[tuple[float | None, float | None]]) -> Spend:
    """`spend_of` from (cost_usd, meta) and (cost_usd, attacker_cost_usd) pairs, in order."""
    target = generated = judges = decoded = 0.0
    for cost, meta in attempts:
        target += cost or 0.0
        generated += float((meta or {}).get("generation_cost_usd") or 0.0)
    for cost, attacker in judgments:
        judges += cost or 0.0
        decoded += attacker or 0.0
    return Spend(target_usd=target, judges_usd=judges, attacker_usd=generated + decoded)


def recorded_spend(backend: SQLBackend, run_id: str) -> float:
    """USD already spent by a run: what `spend_of` finds recorded so far."""
    return stored_spend(backend, run_id).total_usd


def stored_spend(backend: SQLBackend, run_id: str) -> Spend:
    """`spend_of` the run's attempts and judgments, their cost columns streamed from the store
    in the order `list_attempts`/`list_judgments` give them (the same sums, nothing held)."""
    from tracking.store_aggregates import attempt_costs, judgment_costs

    return _spend(attempt_costs(backend, run_id), judgment_costs(backend, run_id))


def open_run(
    *,
    kind: str,
    attack_type: str,
    target: TargetConfig,
    goals: GoalsSpec,
    parameters: dict[str, Any],
    db_url: str | None,
    resume_run_id: str | None,
    prefect_flow_run_id: str,
    logger: logging.Logger,
    benign: GoalsSpec | None = None,
) -> OpenedRun:
    db_url = db_url or default_db_url()
    backend = get_backend(db_url)
    if resume_run_id:
        if backend.get_run(resume_run_id) is None:
            raise RunNotFoundError(f"no run {resume_run_id!r} in {db_url}")
        backend.update_run(resume_run_id, prefect_flow_run_id=prefect_flow_run_id or None)
        coordinator = attach_coordinator(backend, resume_run_id, logger=logger, reopen=True)
        logger.info("resuming run %s", resume_run_id)
        run_id = resume_run_id
    else:
        attack_goals, selection = goals.load_selected()
        specs = goal_specs(goals, benign, attack_goals)
        benign_note = benign_goals_warning(goals.source)
        if benign_note:
            logger.warning("%s", benign_note)
        run_id = backend.create_run(
            attack_type=attack_type,
            target_description=target.describe(),
            config={"kind": kind, **parameters, "goal_selection": selection.as_dict(),
                    **({"goal_warnings": [benign_note]} if benign_note else {})},
            parameters=parameters,
            prefect_flow_run_id=prefect_flow_run_id or None,
            status=StatusEnum.PENDING,
        )
        coordinator = TrackingCoordinator.create(
            backend, run_id, logger=logger, attack_type=attack_type,
            goals=specs,
        )
    tracker = coordinator.goal_tracker
    assert tracker is not None  # created with its goals above
    name_flow_run(prefect_flow_run_id, kind=kind, attack=attack_type, target=target,
                  run_id=run_id)
    rows = [GoalRow.of_context(ctx) for ctx in tracker.contexts
            if ctx.result_id is not None]
    _OPENED_HERE.append((db_url, run_id))
    return OpenedRun(
        ref=RunRef(db_url=db_url, run_id=run_id),
        coordinator=coordinator,
        goal_rows=rows,
        spent_usd=recorded_spend(backend, run_id) if resume_run_id else 0.0,
        resumed=bool(resume_run_id),
    )


#: (store, run id) of every run opened in this process, in order: a command that ran its flow
#: in-process can still name (and finalize) its run when Prefect's API vanished mid-run.
_OPENED_HERE: list[tuple[str, str]] = []


def opened_here(since: int = 0) -> list[tuple[str, str]]:
    """Runs opened in this process, from the `since`-th on (`len(opened_here())` marks now)."""
    return list(_OPENED_HERE[since:])


def start_heartbeat(ref: RunRef, every_s: float | None = None) -> asyncio.Task[None]:
    """Touch the run's heartbeat until cancelled (a SIGKILLed run stops touching it), every
    `every_s`, else `SIEGEFLOW_HEARTBEAT_S` (tests shorten it to see a killed run go stale)."""
    period = every_s if every_s is not None else current_settings().heartbeat_s

    async def beat() -> None:
        backend = ref.backend()
        while True:
            await asyncio.to_thread(backend.heartbeat, ref.run_id)
            await asyncio.sleep(period)

    return asyncio.create_task(beat(), name=f"heartbeat-{ref.run_id}")


@contextlib.asynccontextmanager
async def heartbeat(ref: RunRef) -> AsyncIterator[None]:
    """Keep the run's heartbeat fresh while the block runs (every flow body runs inside one).

    In a deployment run it also sends the siegeflow heartbeat events the zombie automation
    watches (`flows.zombies`), and stops them — then delivers the process's queued events —
    before the block's caller can return, i.e. before the flow run's final state exists."""
    from flows.zombies import start_heartbeats

    beats = start_heartbeats()
    task: asyncio.Task[None] | None = None
    try:
        task = start_heartbeat(ref)
        yield
    finally:
        try:  # whatever the store's heartbeat task raised, the events stop
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            if beats is not None:
                await asyncio.to_thread(beats.stop)
            await asyncio.to_thread(deliver_prefect_events)


def deliver_prefect_events(timeout_s: float = 5.0) -> None:
    """Send this process's queued Prefect events (the last siegeflow heartbeat and the event
    that says they stopped) now, before the flow's final state is proposed: the automation
    then sees them before the run's final-state event in all but pathological delivery orders,
    and `flows.zombies` explains why even those open no bucket."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=timeout_s, at_exit=False)


def recorded_steps(backend: SQLBackend, run_id: str) -> list[StepSummary]:
    """The run's pipeline steps as recorded by `track_step` — wherever the tasks ran.

    The coordinator only knows steps tracked in its own process; tasks may run in other
    threads, processes or workers, so the store is the source of truth. A retried step appears
    once per attempt.
    """
    steps = []
    # run-level traces only: a run of 50,000 goals has as many per-goal evaluation traces
    for trace in backend.list_traces(run_id=run_id, run_level_only=True):
        content = trace.content if isinstance(trace.content, dict) else {}
        if trace.result_id is not None or "step" not in content:
            continue
        steps.append(StepSummary(
            name=trace.step_name,
            type=trace.step_type,
            status=content.get("status", "RUNNING"),
            duration_s=content.get("duration_s"),
            error=content.get("error_type"),
        ))
    return steps


async def publish_results(
    ref: RunRef,
    coordinator: TrackingCoordinator,
    rows: Iterable[PipelineRow],
    *,
    stop_reason: str,
    spent_usd: float,
    extra: Mapping[str, Any] | None = None,
    recorded: Recorded | None = None,
    digest: RunDigest | None = None,
    results: list[ResultRecord] | None = None,
) -> RunSummary:
    """Store the summary on the run and publish the table and markdown artifacts.

    `digest`: the run reduced goal by goal (`finish_run`), from which every figure is taken;
    without one it is made from `rows` (`recorded`: what they were built from, else the store).
    The summary returned carries each goal's best row (`RunSummary.final_rows`). `results`:
    the run's, read before finalization: brought up to date in place (`refresh_results`)
    rather than read again (a second copy of 50,000 results is ~90 MB)."""
    from flows.artifacts import publish_run_artifacts

    backend = ref.backend()
    threshold = float((extra or {}).get("success_threshold", JudgePanelSpec().success_threshold))
    if digest is None:
        digest = _digest_of(backend, ref.run_id, rows, recorded, threshold)
    spend = (spend_of(recorded.attempts, recorded.judgments) if recorded is not None
             else stored_spend(backend, ref.run_id))
    agreement = digest.judge_agreement()
    summary = RunSummary.parse(coordinator.get_summary()).updated(**{
        "stop_reason": stop_reason, "cost_usd": spent_usd, **(extra or {}),
        # what the store recorded wins over a flow's own tally
        "cost_breakdown": spend.as_dict(), "attacker_cost_usd": spend.attacker_usd,
        "steps": recorded_steps(backend, ref.run_id),
        "truncated_answers": digest.truncated,
        "techniques": digest.technique_figures(),
        **({"judge_agreement": agreement} if agreement is not None else {}),
    })
    summary = summary.updated(**corrections(backend, ref.run_id, summary,
                                            per_goal=digest.answers_per_goal))
    backend.update_run(ref.run_id, summary=summary.as_dict(), cost_usd=spent_usd)
    coordinator.log_summary()
    _log_corrections(summary)
    # with the statuses finalization stored
    results = (refresh_results(backend, ref.run_id, results) if results is not None
               else backend.list_results(ref.run_id))
    report = await publish_run_artifacts(ref.run_id, summary, digest.best_rows, results,
                                         backend=backend, digest=digest)
    if report is not None:  # rendered from the stored summary above; now say where it is
        summary = summary.updated(report_path=str(report))
        backend.update_run(ref.run_id, summary=summary.as_dict())
    return summary.with_rows(digest.best_rows)


def refresh_results(backend: SQLBackend, run_id: str,
                    results: list[ResultRecord]) -> list[ResultRecord]:
    """`results` with the outcome finalization stored since they were read (status, notes,
    times: `OUTCOME_COLUMNS`), set in place from one narrow query. Their `metrics` stay as
    read before finalization: the reports never read them (`runs show` reads the store), and
    50,000 goals' metrics were ~100 MB. A result the store no longer has is dropped and one
    it has that `results` lacks is read whole (neither happens at the end of a run)."""
    from tracking.store_aggregates import result_outcomes

    stored = result_outcomes(backend, run_id)
    out: list[ResultRecord] = []
    for result in results:
        values = stored.pop(result.id, None)
        if values is not None:
            for key, value in values.items():
                setattr(result, key, value)
            out.append(result)
    if stored:
        return backend.list_results(run_id)
    return out


def goal_ends(digest: RunDigest) -> tuple[dict[str, int | None], dict[str, dict[str, int]]]:
    """Per goal: its best attempt id and its attempts counted (`record_best_attempts`)."""
    best = {g.result.id: g.best_id for g in digest.goals}  # every goal's, detailed or not
    counts = {g.result.id: {"attempts": g.attempts, "pending": g.pending, "errors": g.errors,
                            "answered": g.attempts - g.pending - g.errors}
              for g in digest.goals}
    return best, counts


def _digest_of(backend: SQLBackend, run_id: str, given: Iterable[PipelineRow],
               recorded: Recorded | None, threshold: float) -> RunDigest:
    """A digest of rows already in memory (a caller of `publish_results` without one)."""
    from reports.digest import RunDigest

    rows = list(given)  # read twice below; a caller without a digest has them in memory
    results = recorded.results if recorded is not None else backend.list_results(run_id)
    keys = sorted({k for row in rows if row.kind != BENIGN for k in row.judges})
    return RunDigest.of_rows(threshold, keys, rows, results)


def _log_corrections(summary: RunSummary) -> None:
    """The run log's ASR line with the corrected figure next to the raw one."""
    from reports.corrected import asr_pair, refusal_with_correction, validation_text

    log = logging.getLogger("siegeflow.flows")
    log.info("ASR %s (correction used: %s)", asr_pair(summary, summary.asr_corrected),
             validation_text(summary.asr_corrected))
    if summary.over_refusal is not None:
        log.info("over-refusal: %s", refusal_with_correction(summary.over_refusal,
                                                             summary.over_refusal_corrected))


def corrections(backend: SQLBackend, run_id: str, summary: RunSummary,
                rows: Iterable[PipelineRow] | None = None, *,
                per_goal: Mapping[str | None, int] | None = None) -> dict[str, Any]:
    """The ASR and the false-refusal rate corrected for judge error, computed once here and
    stored in the summary so every report prints the same figures (`judges.corrected`).
    `rows`: the run's final rows, or `per_goal`: judged answers per goal (`RunDigest`), for how
    many judged answers a goal had at most."""
    from judges.citation import store_lookup
    from judges.corrected import asr_correction, over_refusal_correction

    run = backend.get_run(run_id)
    parameters = run.parameters if run is not None else None
    lookup = store_lookup(backend)
    if per_goal is None:
        counted: dict[str | None, int] = {}
        for row in rows or []:
            if row.kind != BENIGN and row.success is not None:
                counted[row.result_id] = counted.get(row.result_id, 0) + 1
        per_goal = counted
    block = asr_correction(parameters, summary, lookup)
    if per_goal:
        block = block.model_copy(update={"answers_per_goal": max(per_goal.values())})
    out: dict[str, Any] = {"asr_corrected": block}
    refusal = over_refusal_correction(parameters, summary.over_refusal, lookup)
    if refusal is not None:
        out["over_refusal_corrected"] = refusal
    return out


def run_warnings(results: list[Any], judges: JudgePanelSpec,
                 config: Mapping[str, Any] | None = None) -> list[str]:
    """What the summary must say next to the ASR because the figure cannot mean what it seems:
    HarmBench copyright goals judged by a panel that cannot see reproduction of the work; a
    benign set attacked as if it were harmful (recorded in the run's config when it opened)."""
    from judges.citation import panel_name
    from judges.copyright import unchecked_copyright_note

    categories = [r.category for r in results if not is_benign(r.goal_metadata)]
    note = unchecked_copyright_note(categories, [j.name for j in judges.judges],
                                    panel_name(judges.judges, judges.rule))
    recorded = [str(w) for w in (config or {}).get("goal_warnings") or []]
    return ([note] if note else []) + recorded


#: What a flow adds to its run summary, given the run's final rows (or a fixed mapping). The
#: rows are streamed from the store (`reports.rows.StoredRows`): iterate them, do not index.
Extra = Mapping[str, Any] | Callable[[Iterable[PipelineRow]], Mapping[str, Any]]


async def finish_run(
    ref: RunRef,
    coordinator: TrackingCoordinator,
    judges: JudgePanelSpec,
    *,
    spent_usd: float,
    stop_reason: str | Callable[[Iterable[PipelineRow]], str],
    judge_keys: list[str] | None = None,
    success_check: Callable[[Any], bool] | None = None,
    extra: Extra | None = None,
) -> RunSummary:
    """The one way a flow ends a run: rows rebuilt from the store with the run's judges, every
    goal and the pipeline finalized, the summary (with the judge keys that decided it, stored
    once for every reader) written and published.

    `judge_keys` defaults to the panel's; an optimize run whose harness brings its own success
    check passes that check's keys. `stop_reason` and `extra` may read the final rows.
    """
    keys = list(judge_keys or judges.judge_keys)
    backend = ref.backend()
    results = backend.list_results(ref.run_id)
    # the report's goals in detail, the others as figures only: memory flat in the goals too
    digest = RunDigest(judges.success_threshold, keys, detail=REPORT_GOALS)

    def groups() -> Iterator[tuple[str | None, list[PipelineRow]]]:
        for result, mine in goal_groups(backend, ref.run_id, results, keys, judges.rule):
            digest.add(result, mine)  # reduced while the goal's rows are in memory
            yield result.id, mine
            del mine  # before the next goal's rows are read

    # one goal's rows at a time (issue 23): never the run's
    coordinator.finalize_goal_groups(groups(), success_threshold=judges.success_threshold)
    record_best_attempts(backend, ref.run_id, *goal_ends(digest))  # `runs show` reads these
    rows = StoredRows(backend, ref.run_id, results, keys, judges.rule,
                      sum(g.attempts for g in digest.goals), digest=digest)
    coordinator.finalize_pipeline(rows, success_check=success_check)
    more = extra(rows) if callable(extra) else (extra or {})
    reason = stop_reason(rows) if callable(stop_reason) else stop_reason
    run = backend.get_run(ref.run_id)
    warnings = run_warnings(results, judges, run.config if run is not None else None)
    return await publish_results(
        ref, coordinator, rows, stop_reason=reason, spent_usd=spent_usd, digest=digest,
        results=results,
        extra={"success_threshold": judges.success_threshold, "judge_rule": judges.rule,
               "judge_keys": keys, **({"warnings": warnings} if warnings else {}), **more},
    )
