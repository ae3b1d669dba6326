"""One long-lived local Prefect server per data directory, as `siegeflow` commands use it.

Every command runs as a separate process (as a user types it). Each module-level server is
stopped by PID at the end: the suite leaves no background server behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flows.server import read_record, stop_server
from tests.support.openai_server import OpenAIServer
from tracking import get_backend

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class Env:
    """A data directory of its own and a Prefect home without any profile naming a server."""

    def __init__(self, root: Path) -> None:
        self.home = root / "siegeflow-prefect"
        self.client = root / "client-prefect"
        self.client.mkdir(parents=True, exist_ok=True)
        self.pids: set[int] = set()
        self.vars = {
            **{k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_PROFILE")},
            "SIEGEFLOW_PREFECT_HOME": str(self.home), "PREFECT_HOME": str(self.client),
            "COLUMNS": "200", "PYTHONPATH": str(REPO),
        }

    def popen(self, *args: str, cwd: Path = REPO, extra: dict[str, str] | None = None
              ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", *args], cwd=cwd, env={**self.vars, **(extra or {})},
            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )

    def run(self, *args: str, timeout: float = 400, cwd: Path = REPO,
            extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = self.popen(*args, cwd=cwd, extra=extra)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        self.remember()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def remember(self) -> int | None:
        record = read_record(self.home)
        if record:
            self.pids.add(record.pid)
        return record.pid if record else None

    def cleanup(self) -> None:
        stop_server(self.home)
        for pid in self.pids:  # any server a test replaced, by PID
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    env = Env(tmp_path_factory.mktemp("server-lifecycle"))
    try:
        yield env
    finally:
        env.cleanup()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def _flow_run_exists(api_url: str, flow_run_id: str) -> bool:
    with urllib.request.urlopen(f"{api_url}/flow_runs/{flow_run_id}", timeout=10) as resp:
        return resp.status == 200


def _scan_args(base_url: str, db: str, goals: Path, concurrency: int = 4) -> list[str]:
    return ["run", "--target", "openai/siegeflow-test", "--api-base", base_url, "--attack",
            "baseline", "--judge", "refusal", "--goals", str(goals), "--db", db,
            "--concurrency", str(concurrency)]


def _write_goals(path: Path, n: int) -> Path:
    path.write_text("id,goal\n" + "".join(f"g{i},Explain forbidden thing number {i}\n"
                                           for i in range(n)))
    return path


def test_two_runs_reuse_one_server_that_outlives_them(env: Env, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/runs.db"
    goals = _write_goals(tmp_path / "goals.csv", 1)
    with OpenAIServer() as llm:
        args = _scan_args(llm.base_url, db, goals)
        first = env.run(*args)
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
        record = read_record(env.home)
        assert record is not None and _alive(record.pid)  # outlived the command
        second = env.run(*args)
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert read_record(env.home) == record  # the same server, not a second one
    for out in (first.stdout, second.stdout):
        assert f"Prefect API: {record.api_url}" in out
    runs = get_backend(db).list_runs()
    assert len(runs) == 2
    assert all(_flow_run_exists(record.api_url, r.prefect_flow_run_id) for r in runs)
    ui = env.run("ui")
    assert ui.returncode == 0 and f"Prefect UI: {record.ui_url}" in ui.stdout
    assert read_record(env.home) == record  # `ui` started nothing new


def _completed(db: str) -> int:
    runs = get_backend(db).list_runs()
    if not runs:
        return 0
    return sum(a.completed_at is not None for a in get_backend(db).list_attempts(runs[0].id))


def test_kill_9_of_a_run_then_resume_reuses_the_server_and_rerequests_only_what_was_in_flight(
    env: Env, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path}/killed.db"
    total, concurrency = 40, 4
    goals = _write_goals(tmp_path / "goals.csv", total)
    with OpenAIServer(latency_s=1.0) as llm:
        proc = env.popen(*_scan_args(llm.base_url, db, goals, concurrency))
        deadline = time.monotonic() + 400
        while _completed(db) < 8 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the command's whole process group
        proc.communicate()
        requested_before = llm.stats()["chat_requests"]
        time.sleep(1.5)  # answers the dead client never read are not "paid" by it
        stored = _completed(db)
        assert 8 <= stored < total
        (run,) = get_backend(db).list_runs()
        server_before = env.remember()
        assert server_before is not None and _alive(server_before)
        llm.reset()
        resumed = env.run("resume", run.id, "--db", db)
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        resume_requests = llm.stats()["chat_requests"]
    assert env.remember() == server_before  # the killed run's server, found and used
    assert resume_requests == total - stored  # every stored completion kept
    rerequested = resume_requests - (total - requested_before)
    assert rerequested <= concurrency, (
        f"resume re-requested {rerequested} completions; at most {concurrency} were in flight")
    assert _completed(db) == total


def test_a_crashed_server_is_replaced_by_exactly_one_new_one(env: Env) -> None:
    started = env.run("server", "start")
    assert started.returncode == 0, started.stdout + started.stderr
    old = read_record(env.home)
    assert old is not None
    os.killpg(old.pid, signal.SIGKILL)  # the server crashes
    deadline = time.monotonic() + 30
    while _alive(old.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    status = env.run("server", "status")
    assert status.returncode == 1 and "stale record" in status.stdout
    with ThreadPoolExecutor(2) as pool:  # two commands at once agree on one server
        outs = list(pool.map(lambda _: env.run("server", "start"), range(2)))
    assert all(o.returncode == 0 for o in outs), [o.stdout + o.stderr for o in outs]
    new = read_record(env.home)
    assert new is not None and new.pid != old.pid and _alive(new.pid)
    assert all(f"pid {new.pid}," in o.stdout for o in outs)
    status = env.run("server", "status")
    assert status.returncode == 0 and f"pid {new.pid}," in status.stdout


def test_a_stale_record_naming_another_process_is_replaced_and_that_process_spared(
    env: Env,
) -> None:
    stopped = env.run("server", "stop", "--force")  # an earlier test SIGKILLed a run
    assert stopped.returncode == 0
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        env.home.mkdir(parents=True, exist_ok=True)
        (env.home / "server.json").write_text(json.dumps(
            {"pid": bystander.pid, "port": 9, "home": str(env.home), "started_at": 0.0}))
        status = env.run("server", "status")
        assert status.returncode == 1 and "stale record" in status.stdout
        started = env.run("server", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        record = read_record(env.home)
        assert record is not None and record.pid != bystander.pid and _alive(record.pid)
        assert bystander.poll() is None  # a reused pid is never signalled
    finally:
        bystander.kill()
        bystander.wait()


def test_the_active_prefect_profile_names_the_server(
    prefect_api_url: str, tmp_path: Path
) -> None:
    env = Env(tmp_path)
    (env.client / "profiles.toml").write_text(
        'active = "team"\n\n[profiles.team]\n'
        f'PREFECT_API_URL = "{prefect_api_url}"\n'
    )
    db = f"sqlite:///{tmp_path}/profile.db"
    goals = _write_goals(tmp_path / "goals.csv", 1)
    try:
        with OpenAIServer() as llm:
            result = env.run(*_scan_args(llm.base_url, db, goals))
            again = env.run(*_scan_args(llm.base_url, db, goals))
        for out in (result, again):
            assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
            assert f"Prefect API: {prefect_api_url}" in out.stdout
        assert read_record(env.home) is None  # no local server was started
        runs = get_backend(db).list_runs()
        assert len(runs) == 2
        assert all(_flow_run_exists(prefect_api_url, r.prefect_flow_run_id) for r in runs)
        status = env.run("server", "status")
        assert "Prefect's settings name a server" in status.stdout
    finally:
        env.cleanup()
