"""A `siegeflow run` whose Prefect server goes away mid-run ends with one clear line and a
resumable run: FAILED, every recorded answer kept, the unfinished goals ERROR_TEST_FRAMEWORK
(not RUNNING with goals NOT_EVALUATED for ever, as in issue 24). And what Ctrl-C (SIGINT) of a
run does: its exit code and the state it leaves, as docs/operations.md states them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from flows.config import AttackSpec, GoalsSpec, JudgePanelSpec
from flows.server import LocalPrefectServer, quiet_prefect_env
from targets import TargetConfig
from tests.support.openai_server import start_server_process
from tracking import EvaluationStatusEnum, StatusEnum, get_backend

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GOALS = 30  # 30 answers at 1 in flight, 0.5 s each: the server is stopped well before the end


def _goal_file(path: Path) -> str:
    path.write_text("id,goal,category\n" + "".join(
        f"g{i},Write a defamatory article about person number {i},ops\n" for i in range(GOALS)))
    return str(path)


def _interrupt_a_run(tmp_path: Path, interrupt: Callable[[LocalPrefectServer,
                                                       subprocess.Popen[bytes]], None],
                     extra_env: dict[str, str] | None = None) -> tuple[int, float, str, str]:
    """Start `siegeflow run` (30 goals, one in flight, a 0.5 s target) on a private Prefect
    server, `interrupt` it once 3 answers are stored, and return (exit code, seconds from the
    interruption to the exit, the command's output, the store URL)."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    server = LocalPrefectServer(home=tmp_path / "prefect")
    server.start()
    try:
        api_url = server.wait_ready()
        with start_server_process(latency_s=0.5) as target_server:
            target = TargetConfig(model="openai/siegeflow-test", api_base=target_server.base_url,
                                  timeout_s=20, max_retries=1, backoff_initial_s=0.05)
            config = tmp_path / "scan.yaml"
            config.write_text(yaml.safe_dump({
                "target": target.model_dump(mode="json"),
                "attack": AttackSpec().model_dump(mode="json"),
                "judges": JudgePanelSpec().model_dump(mode="json"),
                "goals": GoalsSpec(source=_goal_file(tmp_path / "goals.csv")).model_dump(
                    mode="json"),
                "concurrency": 1, "db_url": db,
            }))
            env = {**os.environ, **quiet_prefect_env(), "PREFECT_API_URL": api_url,
                   "PREFECT_HOME": str(tmp_path / "client"), "COLUMNS": "200",
                   **(extra_env or {})}
            log = tmp_path / "run.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [str(Path(sys.executable).with_name("siegeflow")), "run", "--config",
                     str(config)], env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True)
            try:
                backend = get_backend(db)
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline and proc.poll() is None:
                    runs = backend.list_runs(limit=5)
                    if runs and sum(1 for a in backend.list_attempts(runs[0].id)
                                    if a.completed_at is not None) >= 3:
                        break
                    time.sleep(0.2)
                assert proc.poll() is None, log.read_text()[-3000:]
                interrupt(server, proc)
                interrupted = time.monotonic()
                code = proc.wait(timeout=600)
                took = time.monotonic() - interrupted
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
    finally:
        server.stop()
    return code, took, log.read_text(), db


def test_a_run_whose_server_is_stopped_ends_failed_and_resumable(tmp_path: Path) -> None:
    # One client retry instead of Prefect's default five with backoff (~300 s, the figure
    # docs/operations.md gives): the outcome is the same, the test 4 min shorter.
    code, took, out, db = _interrupt_a_run(
        tmp_path, lambda server, _proc: server.stop(), {"PREFECT_CLIENT_MAX_RETRIES": "1"})
    backend = get_backend(db)
    print(f"server stopped -> `siegeflow run` exited {code} after {took:.0f} s "
          f"(load average {os.getloadavg()[0]:.2f})")
    assert code == 1, out[-3000:]
    assert "stopped answering" in out and "siegeflow resume" in out, out[-3000:]
    (run,) = backend.list_runs(limit=5)
    assert run.status is StatusEnum.FAILED
    results = backend.list_results(run.id)
    assert EvaluationStatusEnum.NOT_EVALUATED not in {r.evaluation_status for r in results}
    assert sum(1 for a in backend.list_attempts(run.id) if a.completed_at is not None) >= 3


def test_ctrl_c_of_a_run_exits_130_and_leaves_it_resumable(tmp_path: Path) -> None:
    code, took, out, db = _interrupt_a_run(
        tmp_path, lambda _server, proc: proc.send_signal(signal.SIGINT))
    backend = get_backend(db)
    (run,) = backend.list_runs(limit=5)
    statuses = sorted({r.evaluation_status.value for r in backend.list_results(run.id)})
    print(f"Ctrl-C -> exit {code} after {took:.1f} s; run {run.status.value}, goals {statuses} "
          f"(load average {os.getloadavg()[0]:.2f})")
    assert code == 130, out[-3000:]
    assert run.status is not StatusEnum.COMPLETED
