"""Issue 24: the zombie automation leaves finished runs alone (no failed action on the server).

With the automation's window shortened through the setting `siegeflow deploy` reads
(`SIEGEFLOW_ZOMBIE_SILENCE_S`, also in the worker's environment so its runs beat every third of
it), on a worker and pool of this test's own:

* several short deployment runs complete; past the window, each is still COMPLETED and the
  server holds no automation action about any of them — and each sent siegeflow heartbeats and
  exactly one event saying they stopped (the automation watched them); a run that fails in its
  setup (before its heartbeats start) ends Failed, with no heartbeat and no action;
* the mechanism, with events sent by hand to two flow runs already COMPLETED: a siegeflow
  heartbeat the server sees after the final state (what Prefect's own heartbeat thread could
  do, the reporter's symptom) makes the action fail, "already in terminal state COMPLETED";
  a heartbeat that arrives *after* the event saying the heartbeats stopped, which follows it,
  opens no bucket that fires (the server orders them by `follows`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from targets import TargetConfig
from tests.ops.conftest import Cluster
from tests.ops.test_distributed import goal_file, params, wait_final
from tests.support.openai_server import start_server_process

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

POOL = "siegeflow-short"
SILENCE_S = 30  # the automation's window here (90 by default); runs beat every 10 s
RUNS = 4
#: After the last run ended: the window, the server's proactive period (5 s), a margin.
WAIT_S = SILENCE_S + 20


async def _deploy() -> Any:
    """`siegeflow-attack/attack` copied onto this test's pool (same flow, tags, heartbeats)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        base = await client.read_deployment_by_name("siegeflow-attack/attack")
        return await client.create_deployment(
            flow_id=base.flow_id, name="short", entrypoint=base.entrypoint,
            work_pool_name=POOL, pull_steps=base.pull_steps, path=base.path,
            parameter_openapi_schema=base.parameter_openapi_schema,
            enforce_parameter_schema=True, tags=["siegeflow"],
            job_variables={"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}},
        )


async def _start(deployment_id: Any, parameters: dict[str, Any]) -> Any:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.create_flow_run_from_deployment(deployment_id, parameters=parameters)


async def _completed_flow_run(flow_id: Any) -> Any:
    """A flow run tagged `siegeflow`, Running then COMPLETED, that no process runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import FlowRunCreate
    from prefect.states import Completed, Running

    async with get_client() as client:
        response = await client.request("POST", "/flow_runs/", json=FlowRunCreate(
            flow_id=flow_id, name=f"by-hand-{uuid.uuid4().hex[:6]}", tags=["siegeflow"],
        ).model_dump(mode="json"))
        flow_run_id = response.json()["id"]
        await client.set_flow_run_state(flow_run_id, Running(), force=True)
        await client.set_flow_run_state(flow_run_id, Completed(), force=True)
        return await client.read_flow_run(flow_run_id)


def _event(name: str, flow_run: Any, follows: Any = None, occurred: datetime | None = None
           ) -> Any:
    from prefect.events.related import tags_as_related_resources
    from prefect.events.schemas.events import Event

    return Event(
        event=name, occurred=occurred or datetime.now(UTC),
        resource={"prefect.resource.id": f"prefect.flow-run.{flow_run.id}"},
        related=tags_as_related_resources(set(flow_run.tags)),
        follows=follows.id if follows is not None else None,
    )


async def _send(*events: Any, gap_s: float = 1.0) -> None:
    from prefect.events.clients import get_events_client

    async with get_events_client() as client:
        for event in events:
            await client.emit(event)
            await asyncio.sleep(gap_s)


async def _events(prefix: str, since: datetime) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    found: list[Any] = []
    async with get_client() as client:
        page = await client.read_events(filter=EventFilter(
            event=EventNameFilter(prefix=[prefix]),
            occurred=EventOccurredFilter(since=since, until=datetime.now(UTC)),
        ), limit=50)
        while page is not None:
            found += page.events
            page = await client.read_events_page(page.next_page) if page.next_page else None
    return found


def _about(events: list[Any], flow_run_id: Any) -> list[Any]:
    return [e for e in events if str(flow_run_id) in e.model_dump_json()]


async def _flow_runs(ids: list[Any]) -> list[Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return [await client.read_flow_run(i) for i in ids]


async def _automation_json(automation_id: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        response = await client.request("GET", "/automations/{id}",
                                        path_params={"id": automation_id})
        stored: dict[str, Any] = response.json()
        return stored


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_finished_runs_are_never_acted_on_by_the_zombie_automation(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.automations import Automation

    from cli.commands.runs import _ensure_zombie_automation
    from flows.zombies import AUTOMATION_NAME, HEARTBEAT_EVENT, STOPPED_EVENT

    since = datetime.now(UTC) - timedelta(seconds=5)
    deployment_id = asyncio.run(_deploy())
    monkeypatch.setenv("SIEGEFLOW_ZOMBIE_SILENCE_S", str(SILENCE_S))
    _ensure_zombie_automation(cluster.api_url)  # what `siegeflow deploy` does after deploying
    try:
        automation = asyncio.run(Automation.aread(name=AUTOMATION_NAME))
        assert automation.trigger.within == timedelta(seconds=SILENCE_S)
        cluster.start_worker(POOL, "short", {"SIEGEFLOW_ZOMBIE_SILENCE_S": str(SILENCE_S)})
        began = time.monotonic()
        with start_server_process(latency_s=0.05) as server:
            target = TargetConfig(model="openai/siegeflow-test", api_base=server.base_url,
                                  timeout_s=20, max_retries=1, backoff_initial_s=0.05)
            runs = [asyncio.run(_start(deployment_id, params(
                target, goal_file(tmp_path / f"short-{i}.csv", 2), cluster.tracking_url)))
                for i in range(RUNS)]
            # and one that fails in its setup (no goal file): it never sends a heartbeat
            broken = asyncio.run(_start(deployment_id, params(
                target, str(tmp_path / "missing.csv"), cluster.tracking_url)))
            finals = asyncio.run(wait_final([r.id for r in runs], timeout_s=300))
            (broken,) = asyncio.run(wait_final([broken.id], timeout_s=120))
        took = time.monotonic() - began
        assert all(f.state.is_completed() for f in finals), [(f.name, f.state_name,
                                                              f.state.message) for f in finals]
        ended = max(f.state.timestamp for f in finals)

        # The mechanism, on two finished flow runs of the same flow.
        late, ordered = (asyncio.run(_completed_flow_run(finals[0].flow_id)) for _ in range(2))
        beat = _event(HEARTBEAT_EVENT, ordered)
        stopped = _event(STOPPED_EVENT, ordered, follows=beat,
                         occurred=beat.occurred + timedelta(seconds=0.5))
        asyncio.run(_send(_event(HEARTBEAT_EVENT, late), stopped, beat))
        sent = datetime.now(UTC)

        wait_until = max(ended, sent) + timedelta(seconds=WAIT_S)
        while datetime.now(UTC) < wait_until:
            time.sleep(2)
        actions = asyncio.run(_events("prefect.automation.action", since))
        beats = asyncio.run(_events("siegeflow.flow-run.", since))
        again = asyncio.run(_flow_runs([f.id for f in finals] + [late.id, ordered.id]))
        broken = asyncio.run(_flow_runs([broken.id]))[0]
    finally:
        monkeypatch.delenv("SIEGEFLOW_ZOMBIE_SILENCE_S")
        _ensure_zombie_automation(cluster.api_url)  # the default window for later tests
    # A deploy that changes nothing leaves the automation alone: an update would give its
    # trigger new ids and orphan the buckets of runs in flight (flows.zombies).
    stored = asyncio.run(_automation_json(automation.id))
    _ensure_zombie_automation(cluster.api_url)
    assert asyncio.run(_automation_json(automation.id)) == stored

    print(f"{RUNS} short deployment runs Completed in {took:.0f} s; waited "
          f"{WAIT_S} s past the last end (window {SILENCE_S} s); automation actions since: "
          + "; ".join(f"{e.event} {e.payload.get('reason', '')}" for e in actions)
          + f" (load average {os.getloadavg()[0]:.1f})")
    for flow_run in finals:
        assert not _about(actions, flow_run.id), _about(actions, flow_run.id)
        mine = _about(beats, flow_run.id)
        assert [e.event for e in mine].count(STOPPED_EVENT) == 1, [e.event for e in mine]
        assert any(e.event == HEARTBEAT_EVENT for e in mine)
    assert all(f.state.is_completed() for f in again), [(f.name, f.state_name) for f in again]
    print(f"run failing in its setup: {broken.state_name} ({(broken.state.message or '')[:80]})")
    assert broken.state.is_failed(), broken.state_name
    assert not _about(beats, broken.id) and not _about(actions, broken.id)
    failed_late = [e for e in _about(actions, late.id)
                   if e.event == "prefect.automation.action.failed"]
    assert failed_late, "a heartbeat seen after the final state did not open a bucket"
    assert "terminal state" in failed_late[0].model_dump_json()
    assert not _about(actions, ordered.id), _about(actions, ordered.id)


async def _running_flow_run(flow_id: Any) -> Any:
    """A flow run tagged `siegeflow`, Running, that no process runs (a vanished one)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import FlowRunCreate
    from prefect.states import Running

    async with get_client() as client:
        response = await client.request("POST", "/flow_runs/", json=FlowRunCreate(
            flow_id=flow_id, name=f"vanished-{uuid.uuid4().hex[:6]}", tags=["siegeflow"],
        ).model_dump(mode="json"))
        flow_run_id = response.json()["id"]
        await client.set_flow_run_state(flow_run_id, Running(), force=True)
        return await client.read_flow_run(flow_run_id)


async def _flow_id() -> Any:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return (await client.read_deployment_by_name("siegeflow-attack/attack")).flow_id


async def _end(flow_run_id: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    async with get_client() as client:
        await client.set_flow_run_state(flow_run_id, Cancelled(), force=True)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_update_of_the_automation_orphans_the_buckets_already_open(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24's "14.5 min with no bucket", one mechanism measured: Prefect gives an updated
    automation's trigger new ids, so a run whose heartbeat opened a bucket before the update,
    and that sends no other, is never crashed by it; a run beating after the update is. Hence
    `ensure_zombie_automation` updates only an automation that differs."""
    from cli.commands.runs import _ensure_zombie_automation
    from flows.zombies import HEARTBEAT_EVENT

    flow_id = asyncio.run(_flow_id())
    monkeypatch.setenv("SIEGEFLOW_ZOMBIE_SILENCE_S", str(SILENCE_S))
    _ensure_zombie_automation(cluster.api_url)
    before = after = None
    try:
        before, after = (asyncio.run(_running_flow_run(flow_id)) for _ in range(2))
        asyncio.run(_send(_event(HEARTBEAT_EVENT, before)))
        time.sleep(5)  # the bucket is open
        monkeypatch.setenv("SIEGEFLOW_ZOMBIE_SILENCE_S", str(SILENCE_S + 1))
        _ensure_zombie_automation(cluster.api_url)  # differs: updated, new trigger ids
        time.sleep(5)  # the server's triggers service has reloaded it
        asyncio.run(_send(_event(HEARTBEAT_EVENT, after)))
        wait_until = time.monotonic() + SILENCE_S + 1 + 25
        while time.monotonic() < wait_until:
            time.sleep(2)
        before_now, after_now = asyncio.run(_flow_runs([before.id, after.id]))
    finally:
        monkeypatch.delenv("SIEGEFLOW_ZOMBIE_SILENCE_S")
        _ensure_zombie_automation(cluster.api_url)
        for flow_run in (before, after):
            if flow_run is not None:
                asyncio.run(_end(flow_run.id))
    print(f"heartbeat before the update: {before_now.state_name}; after it: "
          f"{after_now.state_name} ({after_now.state.message})")
    assert after_now.state.is_crashed(), after_now.state_name
    assert before_now.state.is_running(), before_now.state_name
