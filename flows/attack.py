"""The attack flow: Generation → Completions → Evaluation, recorded through `tracking`.

Each step is a Prefect task whose body runs inside `StepTracker.track_step`; the flow's
failure, crash and cancellation hooks call `finalize_on_error`. Steps are idempotent against
the store, so Prefect's task retries and `siegeflow resume RUN_ID` only do what is missing.
"""

from __future__ import annotations

import logging

from prefect import flow, runtime

from flows.config import AttackSpec, GoalsSpec, JudgePanelSpec
from flows.hooks import RUN_FLOW_OPTIONS
from flows.logs import send_logs_to_runs
from flows.recovery import claim_stale_run
from flows.run_record import finish_run, heartbeat, open_run
from flows.scratch import secure_worker_scratch
from flows.shard import (
    ShardOutcome,
    ShardRef,
    run_shard,
    run_sharded,
    shard_flow_options,
)
from flows.steps import bon_extra, run_steps
from targets import TargetConfig
from tracking import RunSummary

logger = logging.getLogger("siegeflow.flows.attack")


@flow(
    name="siegeflow-attack",
    description="Generate attack prompts, get the target's completions, judge them, record all.",
    **RUN_FLOW_OPTIONS,
)
async def attack_flow(
    target: TargetConfig,
    attack: AttackSpec = AttackSpec(),
    judges: JudgePanelSpec = JudgePanelSpec(),
    goals: GoalsSpec = GoalsSpec(),
    concurrency: int = 16,
    budget_usd: float | None = None,
    db_url: str | None = None,
    resume_run_id: str | None = None,
    shards: int = 1,
    resume_stale: bool = False,
    shard: ShardRef | None = None,
    benign: GoalsSpec | None = None,
) -> RunSummary | ShardOutcome:
    """Attack `target` with `attack` on `goals`, judged by `judges`; return the run summary.

    `shards` > 1 splits the goals over that many flow runs of the shard deployment
    (`flows.shard`); `resume_stale` adopts a stale run of the same scan (`flows.recovery`);
    `shard` is set by a sharded run's parent on its children, never by hand. `benign`: a
    control set sent plain alongside, judged for refusal (the false-refusal rate), never in the ASR.
    """
    send_logs_to_runs()
    secure_worker_scratch(target, attack, judges, goals, benign)
    if shard is not None:
        return await run_shard(shard=shard, run_id=resume_run_id, target=target, attack=attack,
                               judges=judges, concurrency=concurrency, budget_usd=budget_usd,
                               db_url=db_url)
    parameters = {
        **{name: spec.model_dump(mode="json") for name, spec in (
            ("target", target), ("attack", attack), ("judges", judges), ("goals", goals))},
        "benign": benign.model_dump(mode="json") if benign is not None else None,
        "concurrency": concurrency, "budget_usd": budget_usd,
    }
    flow_run_id = str(runtime.flow_run.id or "")
    if resume_stale and not resume_run_id:
        resume_run_id = claim_stale_run(db_url, kind="attack", parameters=parameters,
                                        prefect_flow_run_id=flow_run_id)
    if shards > 1:
        return await run_sharded(
            shards=shards, kind="attack", target=target, attack=attack, judges=judges,
            goals=goals, concurrency=concurrency, budget_usd=budget_usd, db_url=db_url,
            resume_run_id=resume_run_id, parameters=parameters, prefect_flow_run_id=flow_run_id,
            benign=benign,
        )
    opened = open_run(
        kind="attack", attack_type=attack.name, target=target, goals=goals,
        parameters=parameters, db_url=db_url, resume_run_id=resume_run_id,
        prefect_flow_run_id=flow_run_id, logger=logger, benign=benign,
    )
    async with heartbeat(opened.ref):
        done = await run_steps(opened.ref, target, attack, judges, opened.goal_rows,
                               concurrency=concurrency, budget_usd=budget_usd,
                               spent_usd=opened.spent_usd)
        return await finish_run(
            opened.ref, opened.coordinator, judges,
            stop_reason="budget" if done.budget_exhausted else "completed",
            spent_usd=done.spent_usd,
            extra=lambda rows: bon_extra(attack, rows, judges.success_threshold),
        )


#: What the shard deployment runs: the same flow with Prefect flow retries (flows/shard.py).
#: A module-level flow because it is a deployment's entrypoint; its options are read when a
#: worker's flow-run process loads it, i.e. once per shard flow run.
attack_shard_flow = attack_flow.with_options(**shard_flow_options())
