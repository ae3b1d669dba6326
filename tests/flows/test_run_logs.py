"""siegeflow's warnings reach the Prefect run logs (read back from the API), without secrets."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pytest
from prefect import flow, task

from flows.attack import attack_flow
from flows.config import AttackSpec, GoalsSpec, JudgePanelSpec
from flows.logs import send_logs_to_runs
from targets import TargetConfig
from targets.ratelimit import RateLimit
from tests.support.openai_server import OpenAIServer

pytestmark = pytest.mark.e2e


async def _logs_of(flow_run_id: Any, wanted: str, timeout_s: float = 30.0) -> list[Any]:
    """The run's logs once one holds `wanted` (logs reach the server in batches)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout_s
    async with get_client() as client:
        while True:
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            if any(wanted in log.message for log in logs) or time.monotonic() > deadline:
                return logs
            await asyncio.sleep(0.5)


def test_a_task_warning_of_an_attack_run_is_in_its_task_run_logs(
    prefect_api_url: str, llm_server: OpenAIServer, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shared rate limit whose Redis is down: siegeflow.targets.ratelimit warns inside the
    Completions task; the warning is in the flow run's logs, linked to that task run."""
    password = f"pw-{uuid.uuid4().hex}"  # a new URL: the warning is not rate-limited away
    monkeypatch.setenv("SIEGEFLOW_REDIS_URL", f"redis://:{password}@127.0.0.1:9/0")
    target = TargetConfig(model="openai/siegeflow-test", api_base=llm_server.base_url,
                          max_retries=0, timeout_s=10,
                          rate_limit=RateLimit(key=f"t-{uuid.uuid4().hex}", rpm=6000))
    state = asyncio.run(attack_flow(
        target=target, attack=AttackSpec(name="baseline"),
        judges=JudgePanelSpec(judges=[{"name": "refusal"}]), goals=GoalsSpec(limit=2),
        concurrency=2, db_url=sqlite_url, return_state=True))
    assert state.is_completed(), state.message
    logs = asyncio.run(_logs_of(state.state_details.flow_run_id, "limiting in-process"))
    ours = [log for log in logs if log.name == "siegeflow.targets.ratelimit"]
    assert ours, [f"{log.name}: {log.message}" for log in logs]
    assert "limiting in-process" in ours[0].message and ours[0].level == logging.WARNING
    assert ours[0].task_run_id is not None  # in the Completions task run's logs too
    assert all(password not in log.message for log in logs)


@task
def _warn_in_a_task(secret: str) -> None:
    logging.getLogger("siegeflow.tests").warning("judge call failed, Authorization: Bearer %s",
                                                 secret)


@flow
def _warning_flow(secret: str) -> None:
    send_logs_to_runs()
    logging.getLogger("siegeflow.tests").warning("attacker gave up (api_key=%s)", secret)
    _warn_in_a_task(secret)


def test_secrets_in_a_siegeflow_warning_never_reach_the_run_logs(prefect_api_url: str) -> None:
    secret = f"sk-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    logging.getLogger("siegeflow.tests").warning("outside any run: stays local %s", secret)
    state = _warning_flow(secret, return_state=True)
    assert state.is_completed(), state.message
    logs = asyncio.run(_logs_of(state.state_details.flow_run_id, "Bearer"))
    ours = [log for log in logs if log.name == "siegeflow.tests"]
    assert {log.task_run_id is None for log in ours} == {True, False}, ours  # flow and task
    assert any("attacker gave up" in log.message for log in ours)
    assert all(secret not in log.message for log in logs)
    assert all("***" in log.message for log in ours)
    assert not any("stays local" in log.message for log in logs)
