"""No secret on disk, even after a SIGKILL: a target key given as a Prefect Secret block
(`api_key_block`) reaches the flow without being written anywhere.

Prefect's process worker writes each flow run's whole environment to
`prefect-workspace-attempt-*/workspace.json` under the temp directory and deletes it when the
run ends — which a SIGKILLed worker never does. A key exported to the worker (the old way) is
therefore left on disk; the test proves it can see such a leak with a second canary that *is*
in the worker's environment (and is no key), then checks that the key canary is nowhere: not in
the worker's temp directory, the siegeflow data directory, any Prefect home, or the tracking
store. The local target requires the key, so the runs that completed really used it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flows.config import GoalsSpec, JudgePanelSpec
from targets import TargetConfig
from tests.ops.conftest import Cluster, _bin, _stop_group
from tests.ops.support import REPO
from tests.ops.test_distributed import goal_file
from tests.support.openai_server import start_server_process
from tracking import get_backend

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

POOL = "siegeflow-canary"


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                found.append(path)
    return found


def _flow_run_pids(flow_run_id: str) -> list[int]:
    """Processes running this flow run (Prefect puts its id in their environment)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode() in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
    return pids


async def _deploy_on_canary_pool() -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):  # from an earlier run of this test
            await client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        base = await client.read_deployment_by_name("siegeflow-attack/attack")
        return await client.create_deployment(
            flow_id=base.flow_id, name="canary", entrypoint=base.entrypoint,
            work_pool_name=POOL, pull_steps=base.pull_steps, path=base.path,
            parameter_openapi_schema=base.parameter_openapi_schema,
            enforce_parameter_schema=True, tags=["siegeflow"],
            job_variables={"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}},
        )


async def _start(deployment_id: Any, parameters: dict[str, Any]) -> Any:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.create_flow_run_from_deployment(deployment_id, parameters=parameters)


@pytest.mark.slow
def test_a_key_from_a_secret_block_is_nowhere_on_disk_after_a_worker_sigkill(
    cluster: Cluster, tmp_path: Path
) -> None:
    from prefect.blocks.system import Secret

    key_canary = f"canary-key-{uuid.uuid4().hex}"
    env_canary = f"canary-env-{uuid.uuid4().hex}"
    block = f"canary-{uuid.uuid4().hex[:8]}"
    Secret(value=key_canary).save(block, overwrite=True)
    deployment_id = asyncio.run(_deploy_on_canary_pool())
    scratch, home, data = tmp_path / "tmp", tmp_path / "worker-home", tmp_path / "data"
    for folder in (scratch, home, data):
        folder.mkdir()
    worker_env = {
        **cluster.env, "SIEGEFLOW_PROJECT_DIR": str(REPO), "TMPDIR": str(scratch),
        "PREFECT_HOME": str(home), "XDG_DATA_HOME": str(data),
        "SIEGEFLOW_TEST_ENV_CANARY": env_canary, "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    worker = subprocess.Popen(  # noqa: S603 (fixed argv)
        [_bin("prefect"), "worker", "start", "--pool", POOL, "--name", "canary",
         "--type", "process"], cwd=REPO, env=worker_env, stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    killed: list[int] = []
    try:
        with start_server_process(latency_s=0.5, api_key=key_canary) as server:
            target = TargetConfig(model="openai/siegeflow-test", api_base=server.base_url,
                                  api_key_block=block, timeout_s=20, max_retries=0)
            goals = goal_file(tmp_path / "canary.csv", 30)
            flow_run = asyncio.run(_start(deployment_id, {
                "target": target.model_dump(mode="json"),
                "judges": JudgePanelSpec().model_dump(mode="json"),
                "goals": GoalsSpec(source=goals).model_dump(mode="json"),
                "concurrency": 2, "db_url": cluster.tracking_url,
            }))
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and server.stats()["by_status"].get("200", 0) < 3:
                assert worker.poll() is None, "the canary worker died"
                time.sleep(0.5)
            served = server.stats()["by_status"]
            assert served.get("200", 0) >= 3, served  # the key reached the calls
            assert "401" not in served, served
            pids = _flow_run_pids(str(flow_run.id))
            assert pids, "no process runs the flow run"
            os.killpg(worker.pid, signal.SIGKILL)  # the worker and what shares its group
            for pid in pids:  # the flow-run process has a group of its own
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            worker.wait(timeout=10)
    finally:
        _stop_group(worker)
    left = list(scratch.glob("prefect-workspace-attempt-*/workspace.json"))
    assert left, "Prefect left no workspace scratch after the SIGKILL: nothing was tested"
    assert any(env_canary.encode() in p.read_bytes() for p in left), "the grep sees no env leak"
    needle = key_canary.encode()
    places = [scratch, data, home, cluster.home, Path(os.environ.get("PREFECT_HOME", home))]
    leaks = [p for root in places for p in _files_holding(root, needle)]
    assert not leaks, f"the key is on disk: {leaks}"
    engine = get_backend(cluster.tracking_url).engine
    with engine.connect() as conn:
        for table in ("runs", "results", "attempts", "judgments", "traces"):
            text = conn.execute(sa.text(f"SELECT CAST(t AS TEXT) FROM {table} t")).scalars()
            assert not any(key_canary in row for row in text), f"the key is in {table}"
