"""A real distributed setup for the operations tests, once per session:

* two fresh PostgreSQL databases: one for the Prefect server, one for the tracking store;
* `prefect server start` on 127.0.0.1 with its database on PostgreSQL (`LocalPrefectServer`);
* a process work pool, the deployments of `prefect.yaml` registered by `siegeflow deploy`;
* two `prefect worker start` processes serving the pool, with the fault shim
  (tests/ops/faultshim) and a shared Redis rate-limit store in their flow runs' environment.

Every process started here is stopped by its PID (workers: their process group, which holds
the flow-run processes they spawned) and both databases are dropped at the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_ADMIN_URL
from tests.ops.support import REDIS_URL, REPO

POOL = "siegeflow"  # the pool prefect.yaml names
WORKERS = 2
STARTUP_TIMEOUT_S = 180.0


@dataclass
class Cluster:
    """What the tests need to drive the setup."""

    api_url: str
    tracking_url: str
    home: Path
    server_log: Path
    env: dict[str, str]  # for CLI subprocesses (siegeflow, prefect) talking to this server
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker_env: dict[str, str] = field(default_factory=dict)  # what the pool's workers run with

    def start_worker(self, pool: str, name: str, extra_env: dict[str, str] | None = None
                     ) -> subprocess.Popen[bytes]:
        """One more worker (own session; its flow runs share its group), stopped at teardown."""
        log = self.home / f"worker-{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [_bin("prefect"), "worker", "start", "--pool", pool, "--name", name,
                 "--type", "process"],
                cwd=REPO, env={**self.worker_env, **(extra_env or {})}, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.workers.append(proc)
        return proc

    def cli(self, *args: str, timeout_s: float = 120.0, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), cwd=REPO, env=env or self.env, capture_output=True, text=True,
            timeout=timeout_s, check=False,
        )


#: Prefect's scheduler service, shortened so a test sees interval schedules fire: it looks for
#: deployments to schedule every 2 s (default 60) and keeps at most 3 future runs per schedule
#: (default 100), at least 2 of them and at least 30 s ahead.
SCHEDULER_ENV = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MAX_RUNS": "3",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_RUNS": "2",
    "PREFECT_SERVER_SERVICES_SCHEDULER_MIN_SCHEDULED_TIME": "PT30S",
}


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _create_db(admin: Any, name: str) -> None:
    import sqlalchemy as sa

    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))


def _drop_db(admin: Any, name: str) -> None:
    import sqlalchemy as sa

    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the process group led by `proc` (it was started in its own session), then KILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    # Flow-run processes of a worker share its group: gone with it, even if it exited first.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _wait_workers(n: int, deadline: float, procs: list[subprocess.Popen[bytes]],
                  logs: list[Path]) -> None:
    import asyncio

    from prefect.client.orchestration import get_client

    async def online() -> int:
        async with get_client() as client:
            workers = await client.read_workers_for_work_pool(POOL, offset=0, limit=50)
            return sum(1 for w in workers if str(w.status).upper().endswith("ONLINE"))

    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                pytest.fail(f"worker exited with {proc.returncode}: {log.read_text()[-3000:]}")
        if asyncio.run(online()) >= n:
            return
        time.sleep(1.0)
    pytest.fail("workers did not come online: " + " | ".join(p.read_text()[-1500:] for p in logs))


# Package scope: the cluster's Prefect API is this process's active API while it lives, so it
# must be gone before later test folders record flows against the session server.
@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    import sqlalchemy as sa

    from flows.server import LocalPrefectServer, _drain_prefect_workers, quiet_prefect_env

    suffix = uuid.uuid4().hex[:10]
    prefect_db, tracking_db = f"sf_ops_prefect_{suffix}", f"sf_ops_tracking_{suffix}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].split("://", 1)[1]
    try:
        _create_db(admin, prefect_db)
        _create_db(admin, tracking_db)
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {exc}")
    tracking_url = f"postgresql+psycopg://{base}/{tracking_db}"
    home = Path(tmp_path_factory.mktemp("ops"))
    server = LocalPrefectServer(
        home=home / "server", startup_timeout_s=STARTUP_TIMEOUT_S,
        database_url=f"postgresql+asyncpg://{base}/{prefect_db}",
    )
    workers: list[subprocess.Popen[bytes]] = []
    stack = contextlib.ExitStack()
    try:
        with _environ(SCHEDULER_ENV):  # the server process reads them at start
            server.start()
        api_url = server.wait_ready()
        from prefect.settings import PREFECT_API_URL, temporary_settings

        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
        saved = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = api_url
        stack.callback(lambda: os.environ.__setitem__("PREFECT_API_URL", saved) if saved
                       else os.environ.pop("PREFECT_API_URL", None))
        env = {
            **os.environ, **quiet_prefect_env(), "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(home / "client"), "PYTHONPATH": str(REPO),
        }
        # Deployed without SIEGEFLOW_PROJECT_DIR, the pull step keeps its placeholder and each
        # worker resolves it to its own clone when a run starts (as on other machines).
        env.pop("SIEGEFLOW_PROJECT_DIR", None)
        cluster = Cluster(api_url=api_url, tracking_url=tracking_url, home=home, env=env,
                          server_log=server.log_path)
        made = cluster.cli(_bin("prefect"), "work-pool", "create", POOL, "--type", "process")
        assert made.returncode == 0, made.stdout + made.stderr
        deployed = cluster.cli(_bin("siegeflow"), "deploy", timeout_s=240)
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        worker_env = {
            **env,
            "SIEGEFLOW_PROJECT_DIR": str(REPO),
            "PYTHONPATH": os.pathsep.join([str(REPO / "tests/ops/faultshim"), str(REPO)]),
            "SIEGEFLOW_TEST_FAULTS": "1",
            "SIEGEFLOW_REDIS_URL": REDIS_URL,
            "SIEGEFLOW_TASK_RETRY_DELAYS": "0.2,0.2",
            "SIEGEFLOW_SHARD_RETRY_DELAY_S": "1",
            "SIEGEFLOW_HEARTBEAT_S": "1",
            "SIEGEFLOW_STALE_AFTER_S": "3",  # resume_stale adopts runs silent this long
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        }
        logs = []
        for i in range(WORKERS):
            log = home / f"worker-{i}.log"
            logs.append(log)
            with log.open("wb") as out:
                workers.append(subprocess.Popen(
                    [_bin("prefect"), "worker", "start", "--pool", POOL, "--name", f"w{i}",
                     "--type", "process"],
                    cwd=REPO, env=worker_env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                ))
        cluster.workers = workers
        cluster.worker_env = worker_env
        _wait_workers(WORKERS, time.monotonic() + STARTUP_TIMEOUT_S, workers, logs)
        yield cluster
        with contextlib.suppress(RuntimeError):
            _drain_prefect_workers()
    finally:
        for proc in workers:
            _stop_group(proc)
        stack.close()
        server.stop()
        from tracking.store import _BACKENDS  # close pooled connections before dropping

        backend = _BACKENDS.pop(tracking_url, None)
        if backend is not None:
            backend.close()
        for name in (prefect_db, tracking_db):
            _drop_db(admin, name)
        admin.dispose()
