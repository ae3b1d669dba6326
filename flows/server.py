"""A local Prefect API server that siegeflow starts and stops itself.

Why not Prefect's ephemeral mode: it starts a server subprocess inside *every* run and tears it
down at the end. Measured on a 2-core box: ~22 s per run warm, 44-99 s on a cold `PREFECT_HOME`
(the default 20 s startup timeout expires under load). A server we start once — in parallel
with loading the model and the goals — is ready in ~8 s and a small flow then runs in ~1 s.

If `PREFECT_API_URL` is already set (a real server, Prefect Cloud, a test harness), it is used
as is and nothing is started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Generous: a cold start migrates a fresh SQLite database and may share the CPU with a model.
DEFAULT_STARTUP_TIMEOUT_S = 240.0


class PrefectServerError(RuntimeError):
    """The local Prefect server did not come up; the message says where its log is."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as resp:  # noqa: S310 (loopback)
            return resp.status == 200
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def quiet_prefect_env() -> dict[str, str]:
    """Settings that keep Prefect (and litellm) off the network and out of telemetry."""
    return {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(int(DEFAULT_STARTUP_TIMEOUT_S)),
    }


@dataclass
class LocalPrefectServer:
    """A `prefect server start` subprocess bound to 127.0.0.1 with its own `PREFECT_HOME`."""

    home: Path
    port: int = 0
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    database_url: str | None = None  # None = Prefect's SQLite file under `home`
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def log_path(self) -> Path:
        return self.home / "server.log"

    def start(self) -> None:
        """Launch the server without waiting for it (call `wait_ready` later)."""
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = _free_port()
        env = {**os.environ, **quiet_prefect_env(), "PREFECT_HOME": str(self.home)}
        env.pop("PREFECT_API_URL", None)
        # The UI it serves must call this server's API, not the default port 4200.
        env["PREFECT_UI_API_URL"] = f"http://127.0.0.1:{self.port}/api"
        if self.database_url:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = self.database_url
        prefect_bin = Path(sys.executable).with_name("prefect")
        cmd = [str(prefect_bin)] if prefect_bin.exists() else [sys.executable, "-m", "prefect"]
        cmd += ["server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(  # noqa: S603 (fixed argv)
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def wait_ready(self) -> str:
        """Block until /api/health answers; raise with the log's location if it never does."""
        assert self._proc is not None, "start() first"
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PrefectServerError(
                    f"Prefect server exited with code {self._proc.returncode}; see {self.log_path}"
                )
            if _healthy(self.api_url):
                return self.api_url
            time.sleep(0.25)
        self.stop()
        raise PrefectServerError(
            f"Prefect server not ready after {self.startup_timeout_s:.0f} s; see {self.log_path}"
        )

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left after `grace_s`."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _drain_prefect_workers(timeout_s: float = 10.0) -> None:
    """Send Prefect's buffered logs and events while the server is still up."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout_s)


@contextlib.contextmanager
def prefect_api(home: Path, *, startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S) -> Iterator[str]:
    """Yield a usable Prefect API URL: the configured one, or a local server started here.

    Sets `PREFECT_API_URL` for this process (and its children) while the block runs.
    """
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        yield configured
        return
    server = LocalPrefectServer(home=home, startup_timeout_s=startup_timeout_s)
    server.start()
    try:
        url = server.wait_ready()
        # Prefect caches its settings at import: the env var is for child processes, the
        # temporary settings for this one.
        from prefect.settings import PREFECT_API_URL, temporary_settings

        os.environ["PREFECT_API_URL"] = url
        try:
            with temporary_settings(updates={PREFECT_API_URL: url}):
                try:
                    yield url
                finally:
                    _drain_prefect_workers()
        finally:
            os.environ.pop("PREFECT_API_URL", None)
    finally:
        server.stop()
