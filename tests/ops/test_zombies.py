"""Dead shards are detected without any setting: siegeflow's heartbeat events and the zombie
automation that `siegeflow deploy` creates mark a vanished shard's flow run Crashed, and the
sharded run's parent runs that shard again and finishes.

"Vanished" is made real with the fault shim: each shard's first flow-run process stops itself
with SIGSTOP in its Completions step — no step, no state report, no heartbeat, and its worker,
waiting on a child that never exits, reports nothing either (as when a machine is lost). Before
this, the parent waited for ever (the issue: > 3.5 min, the flow runs Running for 10-16 min).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from targets import TargetConfig
from tests.ops.conftest import Cluster
from tests.ops.faults import zombie_pid_file
from tests.ops.test_distributed import DECIDED, child_runs, goal_file, params, trigger, wait_final
from tests.support.openai_server import start_server_process
from tracking import StatusEnum, get_backend

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SHARDS = 2
#: Generous ceiling for the whole scenario on a loaded 2-core machine (not a timing claim:
#: bench-style figures are printed below).
SCENARIO_TIMEOUT_S = 480.0


def _kill(pid_files: list[Path]) -> None:
    for pid_file in pid_files:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def _automation_exists() -> bool:
    from prefect.automations import Automation

    from flows.zombies import AUTOMATION_NAME

    automation = await Automation.aread(name=AUTOMATION_NAME)
    return automation.enabled


@pytest.mark.slow
def test_vanished_shards_are_crashed_by_prefect_and_run_again_by_the_parent(
    cluster: Cluster, tmp_path: Path
) -> None:
    assert asyncio.run(_automation_exists()), "siegeflow deploy did not create the automation"
    goals = goal_file(tmp_path / "zombie-scan.csv", 4)
    pid_files = [zombie_pid_file(Path(goals), i) for i in range(SHARDS)]
    with start_server_process(latency_s=0.05) as server:
        target = TargetConfig(model="openai/siegeflow-test", api_base=server.base_url,
                              timeout_s=20, max_retries=1, backoff_initial_s=0.05)
        started = time.monotonic()
        try:
            parent = asyncio.run(trigger("siegeflow-attack/attack", params(
                target, goals, cluster.tracking_url, shards=SHARDS)))
            (parent,) = asyncio.run(wait_final([parent.id], timeout_s=SCENARIO_TIMEOUT_S))
            elapsed = time.monotonic() - started
        finally:
            _kill(pid_files)
    children = asyncio.run(child_runs(parent.id))
    print(f"sharded run with {SHARDS} vanished shards finished in {elapsed:.0f} s; shard runs: "
          + ", ".join(f"{c.name}={c.state_name}" for c in children))
    assert all(p.exists() for p in pid_files), "the shard processes never froze"
    frozen_at = sorted(p.stat().st_mtime for p in pid_files)
    crashed_at = sorted(c.state.timestamp.timestamp() for c in children
                        if c.state and c.state.is_crashed())
    print("freeze -> Crashed (documented bound 60-95 s): "
          + ", ".join(f"{c - f:.0f} s" for f, c in zip(frozen_at, crashed_at, strict=False))
          + f" (load average {os.getloadavg()[0]:.1f})")
    crashed = [c for c in children if c.state and c.state.is_crashed()]
    assert len(crashed) == SHARDS, [(c.name, c.state_name) for c in children]
    assert all("heartbeat" in (c.state.message or "") for c in crashed)
    completed = [c for c in children if c.state and c.state.is_completed()]
    assert len(completed) == SHARDS, [(c.name, c.state_name) for c in children]
    assert parent.state.is_completed(), parent.state.message
    backend = get_backend(cluster.tracking_url)
    (run,) = [r for r in backend.list_runs(limit=50) if r.prefect_flow_run_id == str(parent.id)]
    assert run.status is StatusEnum.COMPLETED
    assert {r.evaluation_status for r in backend.list_results(run.id)} <= DECIDED
