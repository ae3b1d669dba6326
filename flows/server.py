"""Which Prefect API a command talks to, and the one local server siegeflow keeps for it.

The rule, the same for `run`, `demo`, `resume`, `ui`, `deploy` and `--shards`:

1. the server Prefect's own settings name — `PREFECT_API_URL` from the environment *or* the
   active Prefect profile (`prefect config set PREFECT_API_URL=...`) — is used as is;
2. otherwise siegeflow's local server for the data directory: started once in the background
   (its own process session, so it outlives the command that started it) and reused by every
   later command. `siegeflow server stop` ends it.

Why one long-lived server: starting `prefect server start` costs 8-10 s (cold: a database
migration, 40 s and more under load) and stopping it several more; a command that pays that
every time is slower than the scan it runs.

The server's pid and port live in `server.json` next to its Prefect home; `server.lock` (an
exclusive `flock`) makes concurrent commands agree on one server. A record whose process is gone
or is not a Prefect server (a reused pid) is stale and replaced; a server that stops answering
is killed and replaced. `LocalPrefectServer` is the bare process: tests and benches that need
a throwaway server of their own use it through `private_prefect_api`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from settings import current_settings

#: Generous: a cold start migrates a fresh SQLite database and may share the CPU with a model.
DEFAULT_STARTUP_TIMEOUT_S = 240.0
STATE_FILE = "server.json"
LOCK_FILE = "server.lock"


def default_home() -> Path:
    """The data directory's Prefect home: `SIEGEFLOW_PREFECT_HOME`, else the user data dir."""
    from platformdirs import user_data_dir

    override = current_settings().prefect_home
    return override if override else Path(user_data_dir("siegeflow")) / "prefect"


class PrefectServerError(RuntimeError):
    """The local Prefect server did not come up; the message says where its log is."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as resp:  # noqa: S310 (loopback)
            return resp.status == 200
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def _answers(api_url: str, timeout_s: float = 10.0) -> str | None:
    """None when something answers HTTP at `api_url` (any status: a Cloud API may want a key
    for /health), else why not (refused, unknown host, timeout)."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s):  # noqa: S310
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as exc:
        return str(exc.reason)
    except (OSError, TimeoutError, ValueError) as exc:
        return str(exc) or type(exc).__name__


def quiet_prefect_env() -> dict[str, str]:
    """Settings that keep Prefect (and litellm) off the network and out of telemetry."""
    return {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(int(DEFAULT_STARTUP_TIMEOUT_S)),
    }


def configured_api_url() -> str | None:
    """The API URL Prefect's settings name (environment or active profile), if any."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def _wait_healthy(api_url: str, alive: Callable[[], bool], timeout_s: float) -> bool:
    """Poll /health until it answers (True), or the process dies or time runs out (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _healthy(api_url):
            return True
        if not alive():
            return False
        time.sleep(0.2)
    return False


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

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Launch the server in its own session without waiting for it (`wait_ready` later)."""
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = _free_port()
        env = {**os.environ, **quiet_prefect_env(), "PREFECT_HOME": str(self.home)}
        # The server reads no profile of the user's: its home holds none.
        for key in ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_API_KEY"):
            env.pop(key, None)
        # The UI it serves must call this server's API, not the default port 4200.
        env["PREFECT_UI_API_URL"] = self.api_url
        if self.database_url:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = self.database_url
        prefect_bin = Path(sys.executable).with_name("prefect")
        cmd = [str(prefect_bin)] if prefect_bin.exists() else [sys.executable, "-m", "prefect"]
        cmd += ["server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 (fixed argv)
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> str:
        """Block until /api/health answers; raise with the log's location if it never does."""
        proc = self._proc
        assert proc is not None, "start() first"
        if _wait_healthy(self.api_url, lambda: proc.poll() is None, self.startup_timeout_s):
            return self.api_url
        if proc.poll() is not None:
            raise PrefectServerError(
                f"Prefect server exited with code {proc.returncode}; see {self.log_path}"
            )
        self.stop()
        raise PrefectServerError(
            f"Prefect server not ready after {self.startup_timeout_s:.0f} s; see {self.log_path}"
        )

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left after `grace_s`."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            _terminate_group(proc.pid, grace_s, exited=lambda: proc.poll() is not None)

    def detach(self) -> None:
        """Leave the process running on its own: this object no longer owns it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.returncode = 0  # not ours to reap: keeps Popen's "still running" warning quiet


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is dead for our purposes
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _terminate_group(pid: int, grace_s: float, exited: Callable[[], bool]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and not exited():
        time.sleep(0.05)
    if not exited():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not exited():
            time.sleep(0.05)


# -- the long-lived server of a data directory ----------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ServerRecord:
    """What `server.json` says about the running server."""

    pid: int
    port: int
    home: str
    started_at: float

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return Path(self.home) / "server.log"


def read_record(home: Path) -> ServerRecord | None:
    """The recorded server, or None when there is no (readable) record."""
    try:
        data = json.loads((home / STATE_FILE).read_text(encoding="utf-8"))
        return ServerRecord(pid=int(data["pid"]), port=int(data["port"]), home=str(data["home"]),
                            started_at=float(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_record(home: Path, record: ServerRecord) -> None:
    tmp = home / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(asdict(record)), encoding="utf-8")
    tmp.replace(home / STATE_FILE)


def _is_prefect_server(record: ServerRecord) -> bool:
    """The recorded pid is alive and is *our* `prefect server start` (not a reused pid)."""
    if not _pid_alive(record.pid):
        return False
    try:
        argv = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): the health check decides
    return b"server" in argv and str(record.port).encode() in argv


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One command at a time decides whether to start the server (an exclusive flock)."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / LOCK_FILE).open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def server_status(home: Path) -> ServerRecord | None:
    """The recorded server when it is alive and answers; None otherwise."""
    record = read_record(home)
    if record and _is_prefect_server(record) and _healthy(record.api_url):
        return record
    return None


def ensure_server(home: Path, *, port: int = 0,
                  startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S) -> ServerRecord:
    """The data directory's running server; started (or restarted) here when there is none."""
    with _locked(home):
        record = read_record(home)
        if record and _is_prefect_server(record):
            # Alive: answering, or still starting (its starter may have been killed meanwhile).
            pid = record.pid
            if _wait_healthy(record.api_url, lambda: _pid_alive(pid), startup_timeout_s):
                return record
            _terminate_group(pid, 15.0, exited=lambda: not _pid_alive(pid))  # hung: replace it
        (home / STATE_FILE).unlink(missing_ok=True)  # stale (dead or reused pid) or replaced
        return _start_background(home, port or _reuse_port(record), startup_timeout_s)


def _reuse_port(record: ServerRecord | None) -> int:
    """The last server's port when it is free again (bookmarks keep working), else 0."""
    return record.port if record and record.port >= 1024 and _port_free(record.port) else 0


def _start_background(home: Path, port: int, startup_timeout_s: float) -> ServerRecord:
    log = home / "server.log"
    if log.exists():
        log.replace(home / "server.log.1")
    server = LocalPrefectServer(home=home, port=port, startup_timeout_s=startup_timeout_s)
    server.start()
    record = ServerRecord(pid=server.pid or 0, port=server.port, home=str(home),
                          started_at=time.time())
    _write_record(home, record)  # before waiting: a killed starter leaves a findable server
    try:
        server.wait_ready()
    except PrefectServerError:
        (home / STATE_FILE).unlink(missing_ok=True)
        raise
    server.detach()
    return record


#: Silence after which a Running flow run's heartbeats (Prefect's every 30 s in deployment runs,
#: siegeflow's every third of the zombie window, flows.zombies) say it is gone.
HEARTBEAT_SILENCE_S = 90.0


def _post(api_url: str, path: str, body: dict[str, object], timeout_s: float) -> object:
    request = urllib.request.Request(f"{api_url}{path}", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310 (loopback)
        return json.loads(resp.read())


def active_flow_runs(api_url: str, fresh_s: float, timeout_s: float = 10.0) -> list[str]:
    """`name (state)` of the server's Pending/Running/Cancelling flow runs that show life:
    a state change within `fresh_s`, or a Prefect or siegeflow heartbeat within
    `HEARTBEAT_SILENCE_S`.

    Why not every Running one: a `siegeflow run` killed with SIGKILL leaves its flow run Running
    for ever on the local server, and would block `server stop` for good. (Long CLI runs send no
    Prefect heartbeats: their store heartbeat is what shows them alive.)
    """
    from datetime import UTC, datetime, timedelta

    from flows.zombies import LIFE_EVENTS

    runs = _post(api_url, "/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": [
        "PENDING", "RUNNING", "CANCELLING"]}}}, "limit": 50}, timeout_s)
    assert isinstance(runs, list)
    now = datetime.now(UTC)
    since = now - timedelta(seconds=max(fresh_s, HEARTBEAT_SILENCE_S))

    def beating(flow_run_id: str) -> bool:
        page = _post(api_url, "/events/filter", {"filter": {  # the server allows limit <= 50
            "event": {"name": list(LIFE_EVENTS)},
            "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
            "occurred": {"since": since.isoformat(), "until": now.isoformat()},
        }, "limit": 1}, timeout_s)
        return bool(page.get("events")) if isinstance(page, dict) else False

    live = []
    for r in runs:
        state = r.get("state") or {}
        changed = datetime.fromisoformat(state["timestamp"]) if state.get("timestamp") else None
        if (changed is not None and now - changed <= timedelta(seconds=fresh_s)) or \
                beating(str(r["id"])):
            live.append(f"{r.get('name')} ({state.get('name', '?')})")
    return live


def stop_server(home: Path, grace_s: float = 15.0) -> ServerRecord | None:
    """Stop the data directory's server (its whole process group); the record it had."""
    with _locked(home):
        record = read_record(home)
        if record and _is_prefect_server(record):
            pid = record.pid
            _terminate_group(pid, grace_s, exited=lambda: not _pid_alive(pid))
        (home / STATE_FILE).unlink(missing_ok=True)
        return record


# -- the API a command uses --------------------------------------------------------------


def _drain_prefect_workers(timeout_s: float = 10.0) -> None:
    """Send Prefect's buffered logs and events before the process exits."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=timeout_s)


@contextlib.contextmanager
def _using(url: str) -> Iterator[str]:
    """Make `url` this process's (and its children's) Prefect API while the block runs.

    Prefect reads its settings at import: the env var is for child processes, the temporary
    settings for this one.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    saved = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            try:
                yield url
            finally:
                _drain_prefect_workers()
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved


@contextlib.contextmanager
def prefect_api(home: Path, *, startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S) -> Iterator[str]:
    """Yield the Prefect API to use: the configured one, or `home`'s long-lived local server.

    Nothing is stopped at the end: the local server stays up for the next command.
    """
    configured = configured_api_url()
    if configured:
        problem = _answers(configured)
        if problem is not None:  # say so here, not as a traceback from inside a flow run
            raise PrefectServerError(
                f"the Prefect API at {configured} (PREFECT_API_URL) does not answer: {problem}; "
                "start that server, fix the URL, or unset it to use the local server")
        with _using(configured) as url:
            yield url
        return
    record = ensure_server(home, startup_timeout_s=startup_timeout_s)
    with _using(record.api_url) as url:
        yield url


@contextlib.contextmanager
def private_prefect_api(home: Path, *,
                        startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S) -> Iterator[str]:
    """A throwaway server owned by the block (tests, benches): started here, stopped at the end."""
    server = LocalPrefectServer(home=home, startup_timeout_s=startup_timeout_s)
    server.start()
    try:
        with _using(server.wait_ready()) as url:
            yield url
    finally:
        server.stop()
