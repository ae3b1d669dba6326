"""Schedules fire: an interval schedule on a real server makes scheduled runs that a worker
completes, and the nightly schedule shipped in prefect.yaml holds valid parameters.

With sqlalchemy 2.1 (prefect 3.8.8's scheduler: `InvalidRequestError: Can't evaluate bulk DML
statement`), no scheduled run is ever created: the first assertion fails and the server log
shows the scheduler's error every loop. The scheduler's loop is shortened in conftest.py.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.config import GoalsSpec, JudgePanelSpec
from targets import TargetConfig
from tests.ops.conftest import Cluster
from tests.ops.support import REPO
from tests.ops.test_distributed import goal_file
from tests.support.openai_server import start_server_process
from tracking import StatusEnum, get_backend

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

INTERVAL_S = 20
WANTED = 2  # scheduled runs that must complete
TIMEOUT_S = 240.0


async def _schedule_copy_of_attack(name: str, parameters: dict[str, Any]) -> Any:
    """A deployment like prefect.yaml's `attack` (same flow, pool, pull step, schema) with an
    interval schedule whose runs carry `parameters`."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule

    async with get_client() as client:
        base = await client.read_deployment_by_name("siegeflow-attack/attack")
        return await client.create_deployment(
            flow_id=base.flow_id, name=name, entrypoint=base.entrypoint,
            work_pool_name=base.work_pool_name, work_queue_name=base.work_queue_name,
            pull_steps=base.pull_steps, path=base.path, parameters=parameters,
            parameter_openapi_schema=base.parameter_openapi_schema,
            enforce_parameter_schema=True, tags=["siegeflow", "scheduled-test"],
            schedules=[DeploymentScheduleCreate(
                schedule=IntervalSchedule(interval=timedelta(seconds=INTERVAL_S)), active=True)],
        )


async def _scheduled_runs(deployment_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=50,
        )


async def _stop(deployment_id: Any) -> None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        for schedule in await client.read_deployment_schedules(deployment_id):
            await client.update_deployment_schedule(deployment_id, schedule.id, active=False)
        await client.delete_deployment(deployment_id)


@pytest.mark.slow
def test_an_interval_schedule_fires_and_workers_complete_its_runs(
    cluster: Cluster, tmp_path: Path
) -> None:
    goals = goal_file(tmp_path / "scheduled.csv", 2)
    with start_server_process(latency_s=0.01) as server:
        target = TargetConfig(model="openai/siegeflow-test", api_base=server.base_url,
                              timeout_s=20, max_retries=1, backoff_initial_s=0.05)
        parameters = {
            "target": target.model_dump(mode="json"),
            "judges": JudgePanelSpec().model_dump(mode="json"),
            "goals": GoalsSpec(source=goals).model_dump(mode="json"),
            "concurrency": 4, "db_url": cluster.tracking_url,
        }
        deployment_id = asyncio.run(_schedule_copy_of_attack("scheduled-test", parameters))
        try:
            deadline = time.monotonic() + TIMEOUT_S
            runs: list[Any] = []
            while time.monotonic() < deadline:
                runs = asyncio.run(_scheduled_runs(deployment_id))
                if sum(1 for r in runs if r.state and r.state.is_completed()) >= WANTED:
                    break
                time.sleep(2.0)
        finally:
            asyncio.run(_stop(deployment_id))
    log = cluster.server_log.read_text(errors="replace")
    assert "Can't evaluate bulk DML" not in log, log[-3000:]
    assert runs, "the scheduler created no run for an active interval schedule"
    assert all(r.auto_scheduled for r in runs), "runs came from somewhere else than the scheduler"
    completed = [r for r in runs if r.state and r.state.is_completed()]
    assert len(completed) >= WANTED, [(r.name, r.state_name) for r in runs]
    backend = get_backend(cluster.tracking_url)
    recorded = {r.prefect_flow_run_id: r for r in backend.list_runs(limit=100)}
    for flow_run in completed:
        run = recorded[str(flow_run.id)]
        assert run.status is StatusEnum.COMPLETED
        assert len(backend.list_results(run.id)) == 2


def test_the_shipped_nightly_schedule_is_registered_and_its_parameters_are_valid(
    cluster: Cluster,
) -> None:
    """The example in prefect.yaml: a valid cron, inactive, parameters the flow accepts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.schedules import CronSchedule

    from flows.attack import attack_flow

    shipped = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (attack,) = [d for d in shipped["deployments"] if d["name"] == "attack"]
    (nightly,) = attack["schedules"]

    async def registered() -> list[Any]:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("siegeflow-attack/attack")
            return await client.read_deployment_schedules(deployment.id)

    (schedule,) = asyncio.run(registered())
    assert isinstance(schedule.schedule, CronSchedule)
    assert schedule.schedule.cron == "0 2 * * *" and schedule.schedule.timezone == "UTC"
    assert schedule.active is False and schedule.slug == "nightly-regression"
    assert schedule.parameters == nightly["parameters"]
    validated = attack_flow.validate_parameters(dict(schedule.parameters))
    assert validated["resume_stale"] is True and validated["target"].api_key_env == "OPENAI_API_KEY"
