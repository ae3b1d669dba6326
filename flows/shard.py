"""Sharded attack runs: one siegeflow run, N child flow runs of the shard deployment.

`attack_flow(shards=N)` (or `siegeflow run --shards N`) is the *parent*: it creates the run and
one result per goal, then triggers N flow runs of the deployment `siegeflow-attack/attack-shard`
with `run_deployment(..., as_subflow=True)` — Prefect links them under the parent in the UI, and
whatever workers serve the pool run them. Each child gets `resume_run_id=<the run>` and
`shard={index, count}` and works only on the goals with `goal_index % count == index`:
generation, completions and evaluation, all keyed by result in the store, so shards never
duplicate each other's work and a retried shard only does what it has not recorded.

Failures: the shard deployment runs `attack_shard_flow`, the same flow with Prefect flow
retries (`SIEGEFLOW_SHARD_RETRIES`, default 2), on top of the steps' own task retries. A shard
whose flow run ends Crashed — its process or worker died, seen by the worker or, when the
worker is gone too, by the zombie automation of `flows.zombies` or, when that has not acted,
by the parent's own watch (`_watch`: Pending, or Running with no heartbeat, Prefect's or
siegeflow's, for
`SIEGEFLOW_SHARD_SILENCE_S`) — is run again once as a new flow run
(`SIEGEFLOW_SHARD_CRASH_RETRIES`). A shard
that is still not Completed when its flow run ends (or after `SIEGEFLOW_SHARD_TIMEOUT_S`) has
its goals marked ERROR_TEST_FRAMEWORK with the shard's final state in the notes — never
dropped — and the run ends FAILED, so `siegeflow resume RUN_ID` finishes exactly those goals.
Children run no failure hooks on the run (`flows.hooks` skips shards): the parent finalizes.

The parent aggregates from the store, not from the children's return values: one set of rows,
one finalization, one summary and ASR, the same artifacts as an unsharded run.

Budget: each shard gets the share of `budget_usd` proportional to its goals, counted against
what its goals already spent, so N shards never spend more than the run's budget in all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.config import AttackSpec, GoalsSpec, JudgePanelSpec
from flows.run_record import (
    OpenedRun,
    finish_run,
    heartbeat,
    open_run,
    recorded_spend,
    spend_of,
)
from flows.steps import bon_extra, run_steps
from reports.rows import StoredRows
from settings import current_settings
from targets import TargetConfig
from tasks.context import GoalRow, RunRef
from tracking import (
    EvaluationStatusEnum,
    PipelineRow,
    ResultUpdate,
    RunSummary,
    SQLBackend,
    default_db_url,
)
from tracking.store_pipeline import AttemptFilter, GoalShard

logger = logging.getLogger("siegeflow.flows.shard")

MAX_SHARDS = 64


def shard_flow_options() -> dict[str, Any]:
    """Prefect flow retries of a shard (its steps also have their own task retries):
    `SIEGEFLOW_SHARD_RETRIES` and `SIEGEFLOW_SHARD_RETRY_DELAY_S` where the shard runs."""
    settings = current_settings()
    return {"retries": settings.shard_retries,
            "retry_delay_seconds": settings.shard_retry_delay_s}


class ShardRef(BaseModel):
    """Which part of a sharded run a child flow run works on (set by the parent, not by hand)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=0)
    count: int = Field(ge=2, le=MAX_SHARDS)

    @model_validator(mode="after")
    def _index_in_range(self) -> ShardRef:
        if self.index >= self.count:
            raise ValueError("shard index must be below the shard count")
        return self

    def owns(self, goal_index: int) -> bool:
        return goal_index % self.count == self.index


class ShardDeploymentMissing(LookupError):
    """The shard deployment is not registered on the Prefect server the parent talks to."""


class ShardsFailed(RuntimeError):
    """Some shards stayed failed: their goals are ERROR_TEST_FRAMEWORK and the run FAILED."""


def _spent_on(backend: SQLBackend, run_id: str, shard: GoalShard) -> float:
    """What a shard's goals have already cost (a resumed or retried shard), read a page of
    attempts at a time with their verdicts: nothing of the run held at once."""
    from tracking.store_aggregates import judgments_of

    spent = 0.0
    for page in backend.iter_attempts(run_id, AttemptFilter(shard=shard),
                                      columns=["cost_usd", "meta"]):
        judged = judgments_of(backend, [a.id for a in page if a.id is not None])
        spent += spend_of(page, judged).total_usd
    return spent


class ShardOutcome(BaseModel):
    """What a shard child returns (the parent reads the store, not this: it is for the UI)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    shard: int
    shards: int
    goals: int
    requested: int
    judgments: int
    budget_exhausted: bool
    spent_usd: float


async def run_shard(
    *,
    shard: ShardRef,
    run_id: str | None,
    target: TargetConfig,
    attack: AttackSpec,
    judges: JudgePanelSpec,
    concurrency: int,
    budget_usd: float | None,
    db_url: str | None,
) -> ShardOutcome:
    """The child: the three steps on this shard's goals of an existing run; finalizes nothing."""
    if not run_id:
        raise ValueError("a shard needs resume_run_id: the run its parent created")
    ref = RunRef(db_url=db_url or default_db_url(), run_id=run_id)
    backend = ref.backend()
    if backend.get_run(run_id) is None:
        raise LookupError(f"shard {shard.index}/{shard.count}: no run {run_id!r} in the store")
    mine = [r for r in backend.list_results(run_id) if shard.owns(r.goal_index)]
    part = GoalShard(index=shard.index, count=shard.count)
    spent = _spent_on(backend, run_id, part)
    async with heartbeat(ref):
        done = await run_steps(ref, target, attack, judges, [GoalRow.of_result(r) for r in mine],
                               concurrency=concurrency, budget_usd=budget_usd, spent_usd=spent,
                               shard=part)
    return ShardOutcome(
        run_id=run_id, shard=shard.index, shards=shard.count, goals=len(mine),
        requested=done.requested, judgments=done.judgments,
        budget_exhausted=done.budget_exhausted, spent_usd=done.spent_usd,
    )


async def _check_deployment(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_deployment_by_name(name)
        except ObjectNotFound:
            raise ShardDeploymentMissing(
                f"deployment {name!r} is not registered on {client.api_url}: run "
                "`siegeflow deploy` against that server and start workers on its pool "
                "(docs/operations.md)"
            ) from None


async def _run_child(name: str, parameters: dict[str, Any], key: str) -> Any:
    """Run one shard's flow run to a final state; a Crashed one is run again, once.

    Crashed means the process or its worker vanished (the worker saw it die, or the zombie
    automation of `flows.zombies` found its heartbeats stopped): the machine may be gone, so
    the shard is worth another flow run elsewhere. Whatever it recorded is kept (keyed writes).
    """
    for attempt in range(1 + current_settings().shard_crash_retries):
        flow_run = await _run_child_once(name, parameters, key if attempt == 0
                                         else f"{key}-after-crash-{attempt}")
        if flow_run.state is None or not flow_run.state.is_crashed():
            return flow_run
        logger.warning("shard flow run %s crashed (%s): running the shard again", flow_run.id,
                       flow_run.state.message or "no message")
    return flow_run


#: Seconds between the parent's looks at a shard's flow run.
POLL_S = 2.0


class ShardLife(BaseModel):
    """What the parent knows of a shard flow run that is not final yet."""

    model_config = ConfigDict(frozen=True)

    state_type: str  # Prefect StateType value: PENDING, RUNNING, SCHEDULED, ...
    state_since: float  # epoch seconds of the current state
    last_heartbeat: float | None  # epoch s of its latest heartbeat (zombies.LIFE_EVENTS)


def dead_for(life: ShardLife, now: float, silence_s: float) -> float | None:
    """Seconds a shard has been silent beyond `silence_s`' start, when it counts as dead.

    Why these rules: a worker that dies after claiming a run leaves it Pending ("Submitting")
    for ever, and one that dies with its flow-run process leaves it Running with heartbeats that
    stop. A Running shard that never sent a heartbeat (heartbeats off in its deployment) is
    never judged here: its silence says nothing.
    """
    if life.state_type == "PENDING":
        silent = now - life.state_since
    elif life.state_type == "RUNNING" and life.last_heartbeat is not None:
        silent = now - max(life.last_heartbeat, life.state_since)
    else:
        return None
    return silent if silent >= silence_s else None


async def _last_heartbeat(client: Any, flow_run_id: Any) -> float | None:
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOrder,
        EventResourceFilter,
    )

    from flows.zombies import LIFE_EVENTS

    page = await client.read_events(filter=EventFilter(
        event=EventNameFilter(name=list(LIFE_EVENTS)),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
        order=EventOrder.DESC,
    ), limit=1)
    return page.events[0].occurred.timestamp() if page.events else None


async def _watch(flow_run_id: Any, timeout_s: float | None) -> Any:
    """Poll a shard flow run until it is final; crash it when it is dead (`dead_for`).

    Prefect's zombie automation (`flows.zombies`) normally crashes a vanished run first; this
    is the bound that holds when it does not (seen: a bucket never opened, runs Running for
    14.5 min).
    """
    import time

    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling, Crashed

    silence_s = current_settings().shard_silence_s
    started = time.monotonic()
    async with get_client() as client:
        while True:
            flow_run = await client.read_flow_run(flow_run_id)
            state = flow_run.state
            if state is not None and state.is_final():
                return flow_run
            if timeout_s is not None and time.monotonic() - started >= timeout_s:
                logger.warning("shard flow run %s still %s after %.0f s: cancelling it",
                               flow_run.id, state.name if state else "unknown", timeout_s)
                await client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
                return flow_run
            # Only a state at least `silence_s` old can be a dead one: ask for heartbeats then
            # (64 shards would otherwise cost 32 event queries a second).
            if state is not None and time.time() - state.timestamp.timestamp() >= silence_s:
                life = ShardLife(
                    state_type=state.type.value, state_since=state.timestamp.timestamp(),
                    last_heartbeat=await _last_heartbeat(client, flow_run.id)
                    if state.is_running() else None)
                silent = dead_for(life, time.time(), silence_s)
                if silent is not None:
                    message = (f"marked Crashed by its sharded run's parent: {state.name} with "
                               f"no heartbeat or state change for {silent:.0f} s "
                               "(SIEGEFLOW_SHARD_SILENCE_S); its process or worker is gone")
                    logger.warning("shard flow run %s: %s", flow_run.id, message)
                    await client.set_flow_run_state(flow_run.id, Crashed(message=message),
                                                    force=True)
                    continue  # read it back: the final state is what the caller sees
            await asyncio.sleep(POLL_S)


async def _run_child_once(name: str, parameters: dict[str, Any], key: str) -> Any:
    from prefect.deployments.flow_runs import arun_deployment

    flow_run = await arun_deployment(
        name, parameters=parameters, timeout=0,
        as_subflow=True, idempotency_key=key, tags=["siegeflow", "shard"],
        flow_run_name=f"shard-{parameters['shard']['index']}-of-{parameters['shard']['count']}",
    )
    return await _watch(flow_run.id, current_settings().shard_timeout_s)


async def run_sharded(
    *,
    shards: int,
    kind: str,
    target: TargetConfig,
    attack: AttackSpec,
    judges: JudgePanelSpec,
    goals: GoalsSpec,
    concurrency: int,
    budget_usd: float | None,
    db_url: str | None,
    resume_run_id: str | None,
    parameters: dict[str, Any],
    prefect_flow_run_id: str,
    benign: GoalsSpec | None = None,
) -> RunSummary:
    """The parent: open the run, run N shard flow runs, finalize and publish the whole run."""
    if not 2 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be between 2 and {MAX_SHARDS} (1 runs unsharded)")
    deployment = current_settings().shard_deployment
    await _check_deployment(deployment)  # before anything is recorded
    opened = open_run(
        kind=kind, attack_type=attack.name, target=target, goals=goals,
        parameters={**parameters, "shards": shards}, db_url=db_url,
        resume_run_id=resume_run_id, prefect_flow_run_id=prefect_flow_run_id, logger=logger,
        benign=benign,
    )
    ref = opened.ref
    refs = [ShardRef(index=i, count=shards) for i in range(shards)]
    owned = {s.index: {g.result_id for g in opened.goal_rows if s.owns(g.index)} for s in refs}
    common = {
        "target": target.model_dump(mode="json"), "attack": attack.model_dump(mode="json"),
        "judges": judges.model_dump(mode="json"), "goals": goals.model_dump(mode="json"),
        # The parameter as given: None means each worker's $SIEGEFLOW_DB_URL, so a store
        # URL with a password never becomes a Prefect parameter on its way to the shards.
        "concurrency": concurrency, "db_url": db_url, "resume_run_id": ref.run_id,
    }
    total = max(len(opened.goal_rows), 1)
    async with heartbeat(ref):
        children = await asyncio.gather(*(
            _run_child(
                deployment,
                {**common, "shard": s.model_dump(),
                 "budget_usd": None if budget_usd is None
                 else budget_usd * len(owned[s.index]) / total},
                key=f"{prefect_flow_run_id or ref.run_id}-shard-{s.index}-of-{shards}",
            )
            for s in refs
        ))
        failed = _failed_shards(refs, children)
        _finalize_failed(opened, failed, owned, shards)
        summary = await _finish_sharded(opened, attack, judges, budget_usd, refs, children,
                                        failed, owned)
    if failed:
        raise ShardsFailed(
            f"run {ref.run_id}: shard(s) {sorted(failed)} of {shards} stayed failed; their goals "
            f"are ERROR_TEST_FRAMEWORK; `siegeflow resume {ref.run_id}` finishes them"
        )
    return summary


def _failed_shards(refs: list[ShardRef], children: list[Any]) -> dict[int, tuple[str, str]]:
    """Shard index -> (final state name, message) for every child that did not complete."""
    return {
        s.index: (child.state.name if child.state else "unknown",
                  (child.state.message if child.state else None) or "")
        for s, child in zip(refs, children, strict=True)
        if child.state is None or not child.state.is_completed()
    }


def _finalize_failed(opened: OpenedRun, failed: dict[int, tuple[str, str]],
                     owned: dict[int, set[str]], shards: int) -> None:
    """A failed shard's unfinished goals are ERROR_TEST_FRAMEWORK, its state in the notes."""
    tracker = opened.coordinator.goal_tracker
    assert tracker is not None
    tracker.finalize_goals([
        (ctx, ResultUpdate(
            result_id=ctx.result_id or "",
            evaluation_status=EvaluationStatusEnum.ERROR_TEST_FRAMEWORK,
            evaluation_notes=f"shard {i}/{shards} ended {name}: {message}"[:2000],
        ))
        for i, (name, message) in failed.items()
        for ctx in tracker.contexts
        if ctx.result_id in owned[i] and not ctx.is_finalized
    ])


async def _finish_sharded(
    opened: OpenedRun, attack: AttackSpec, judges: JudgePanelSpec, budget_usd: float | None, refs: list[ShardRef],
    children: list[Any], failed: dict[int, tuple[str, str]], owned: dict[int, set[str]],
) -> RunSummary:
    ref = opened.ref
    done = set().union(*(owned[i] for i in owned if i not in failed))

    def stop_reason(rows: Iterable[PipelineRow]) -> str:
        digest = rows.digest if isinstance(rows, StoredRows) else None
        if digest is not None:  # each goal's pending attempts were counted: no second pass
            pending = any(g.pending for g in digest.goals if g.result.id in done)
        else:
            pending = any(r.pending for r in rows if r.result_id in done)
        return "budget" if budget_usd is not None and pending else "completed"

    return await finish_run(
        ref, opened.coordinator, judges,
        success_check=lambda _: not failed,
        stop_reason=stop_reason,
        spent_usd=recorded_spend(ref.backend(), ref.run_id),
        extra=lambda rows: {
            "shards": len(refs), "failed_shards": sorted(failed),
            "shard_flow_runs": {str(s.index): str(c.id) for s, c in zip(refs, children,
                                                                        strict=True)},
            **bon_extra(attack, rows, judges.success_threshold),
        },
    )
