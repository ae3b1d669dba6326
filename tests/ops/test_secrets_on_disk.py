"""No secret on disk, even after a SIGKILL of the worker.

Prefect's process worker writes each flow run's whole environment to
`prefect-workspace-attempt-*/workspace.json` under the temp directory and deletes it when the
run ends — which a SIGKILLed worker never does. Two runs share one worker: one takes its target
key from a Prefect Secret block (`api_key_block`: never in any environment), the other from the
worker's environment (`api_key_env`, the README's main way), whose scratch copy every siegeflow
flow run scrubs at its start (`flows/scratch.py`). The worker also carries a credential-named
variable no config names and a store URL with a password. After the SIGKILL the test checks that
Prefect's scratch is still there (so something was tested) and still usable for hooks, and that
no canary is anywhere: not in the worker's temp directory, the siegeflow data directory, any
Prefect home, or the tracking store. Each local target requires its key, so the runs that
completed really used them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from tests.ops.test_distributed import goal_file, wait_final
from tests.support.openai_server import start_server_process
from tracking import StatusEnum, get_backend

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


def _wait_served(servers: list[Any], worker: subprocess.Popen[bytes], n: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the canary worker died"
        if all(s.stats()["by_status"].get("200", 0) >= n for s in servers):
            return
        time.sleep(0.5)
    pytest.fail(f"runs did not call their targets: {[s.stats() for s in servers]}")


def _sigkill_worker_and_runs(worker: subprocess.Popen[bytes], flow_run_ids: list[str]) -> None:
    pids = [pid for run_id in flow_run_ids for pid in _flow_run_pids(run_id)]
    assert pids, "no process runs the flow runs"
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and what shares its group
    for pid in pids:  # each flow-run process has a group of its own
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.wait(timeout=10)


def _run_params(target: TargetConfig, goals: str, db_url: str) -> dict[str, Any]:
    return {
        "target": target.model_dump(mode="json"),
        "judges": JudgePanelSpec().model_dump(mode="json"),
        "goals": GoalsSpec(source=goals).model_dump(mode="json"),
        "concurrency": 2, "db_url": db_url,
    }


@pytest.mark.slow
def test_no_key_is_on_disk_after_a_worker_sigkill_from_a_block_or_the_environment(
    cluster: Cluster, tmp_path: Path
) -> None:
    from prefect.blocks.system import Secret

    block_canary = f"canary-block-{uuid.uuid4().hex}"
    env_canary = f"canary-env-{uuid.uuid4().hex}"
    token_canary = f"canary-token-{uuid.uuid4().hex}"
    url_canary = f"canarypw{uuid.uuid4().hex}"
    block = f"canary-{uuid.uuid4().hex[:8]}"
    Secret(value=block_canary).save(block, overwrite=True)
    assert "://postgres@" in cluster.tracking_url
    deployment_id = asyncio.run(_deploy_on_canary_pool())
    scratch, home, data = tmp_path / "tmp", tmp_path / "worker-home", tmp_path / "data"
    for folder in (scratch, home, data):
        folder.mkdir()
    worker_env = {
        **cluster.env, "SIEGEFLOW_PROJECT_DIR": str(REPO), "TMPDIR": str(scratch),
        "PREFECT_HOME": str(home), "XDG_DATA_HOME": str(data),
        "SIEGEFLOW_CANARY_FOR_TARGET": env_canary,  # named by the target's api_key_env only
        "SOME_SERVICE_TOKEN": token_canary,  # named by no config: its name says credential
        # trust auth ignores the password; the runs pass the store URL as a parameter anyway
        "SIEGEFLOW_DB_URL": cluster.tracking_url.replace("://postgres@",
                                                         f"://postgres:{url_canary}@"),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    worker = subprocess.Popen(
        [_bin("prefect"), "worker", "start", "--pool", POOL, "--name", "canary",
         "--type", "process"], cwd=REPO, env=worker_env, stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        with start_server_process(latency_s=0.5, api_key=block_canary) as by_block, \
                start_server_process(latency_s=0.5, api_key=env_canary) as by_env:
            common = {"model": "openai/siegeflow-test", "timeout_s": 20, "max_retries": 0}
            targets = [
                TargetConfig(api_base=by_block.base_url, api_key_block=block, **common),
                TargetConfig(api_base=by_env.base_url, api_key_env="SIEGEFLOW_CANARY_FOR_TARGET",
                             **common),
            ]
            runs = [asyncio.run(_start(deployment_id, _run_params(
                target, goal_file(tmp_path / f"canary{i}.csv", 30), cluster.tracking_url)))
                for i, target in enumerate(targets)]
            _wait_served([by_block, by_env], worker, 3)  # both keys reached their calls
            for server in (by_block, by_env):
                assert "401" not in server.stats()["by_status"], server.stats()
            _sigkill_worker_and_runs(worker, [str(run.id) for run in runs])
    finally:
        _stop_group(worker)
    left = list(scratch.glob("prefect-workspace-attempt-*/workspace.json"))
    assert len(left) == 2, f"Prefect's scratch is not what was tested: {left}"
    for manifest in left:  # scrubbed, not deleted: the worker's hooks could still use it
        environment = json.loads(manifest.read_text())["environment"]
        assert environment["SIEGEFLOW_PROJECT_DIR"] == str(REPO)
        assert environment["SIEGEFLOW_DB_URL"] == cluster.tracking_url  # without the password
        assert "PATH" in environment and "PREFECT_API_URL" in environment
    places = [scratch, data, home, cluster.home, Path(os.environ.get("PREFECT_HOME", home))]
    for canary in (block_canary, env_canary, token_canary, url_canary):
        leaks = [p for root in places for p in _files_holding(root, canary.encode())]
        assert not leaks, f"{canary[:12]}... is on disk: {leaks}"
    engine = get_backend(cluster.tracking_url).engine
    with engine.connect() as conn:
        for table in ("runs", "results", "attempts", "judgments", "traces"):
            text = list(conn.execute(sa.text(f"SELECT CAST(t AS TEXT) FROM {table} t")).scalars())
            for canary in (block_canary, env_canary):
                assert not any(canary in row for row in text), f"a key is in {table}"


@pytest.mark.slow
def test_the_scrubbed_scratch_still_runs_the_workers_crash_hooks(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The scrub keeps what hooks need: a flow-run process SIGKILLed under a live worker (the
    OOM killer's way) is reported Crashed by the worker, which runs `on_crashed` from the
    scrubbed `workspace.json`; the hook finalizes the siegeflow run as FAILED."""
    key = f"canary-hook-{uuid.uuid4().hex}"
    deployment_id = asyncio.run(_deploy_on_canary_pool())
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    worker_env = {**cluster.env, "SIEGEFLOW_PROJECT_DIR": str(REPO), "TMPDIR": str(scratch),
                  "SIEGEFLOW_HOOK_KEY": key, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    worker = subprocess.Popen(
        [_bin("prefect"), "worker", "start", "--pool", POOL, "--name", "canary-hooks",
         "--type", "process"], cwd=REPO, env=worker_env, stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    goals = goal_file(tmp_path / "hooks.csv", 30)
    try:
        with start_server_process(latency_s=0.5, api_key=key) as server:
            target = TargetConfig(model="openai/siegeflow-test", api_base=server.base_url,
                                  api_key_env="SIEGEFLOW_HOOK_KEY", timeout_s=20, max_retries=0)
            run = asyncio.run(_start(deployment_id,
                                     _run_params(target, goals, cluster.tracking_url)))
            _wait_served([server], worker, 3)
            manifests = list(scratch.glob("prefect-workspace-attempt-*/workspace.json"))
            assert len(manifests) == 1 and key.encode() not in manifests[0].read_bytes()
            for pid in _flow_run_pids(str(run.id)):  # the flow run only: its worker lives on
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            (final,) = asyncio.run(wait_final([run.id], timeout_s=120))
            assert final.state.is_crashed(), final.state
            backend = get_backend(cluster.tracking_url)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                mine = [r for r in backend.list_runs(prefect_flow_run_id=str(run.id))]
                if mine and mine[0].status is StatusEnum.FAILED:
                    break
                assert worker.poll() is None, "the worker died"
                time.sleep(1.0)
            assert mine and mine[0].status is StatusEnum.FAILED, mine  # the hook ran
    finally:
        _stop_group(worker)
    assert not list(scratch.glob("prefect-workspace-attempt-*")), "the worker cleans up"
