"""A warm interpreter per data directory: commands that run flows start without import time.

Why: `import prefect` and what a run needs take 1.5-2.5 s of CPU on a small machine, before the
first target call. A short scan pays that on every command; a 900-call scan loses a fifth of
its wall time to it. So, like a Prefect server, one process per data directory stays up with
those libraries already imported; `siegeflow run|demo|resume` asks it for a copy of itself
(`fork`) and the copy runs the command exactly as the typed process would have:

* with the caller's argv, environment, working directory, umask, `sys.path` and its stdin,
  stdout and stderr (the file descriptors themselves, passed over the socket), so output,
  terminal detection, prompts and exit codes are the caller's; Prefect's settings (profile,
  `PREFECT_API_URL`) and logging are re-read from the caller's environment;
* siegeflow's own modules are imported in the copy, never in the runner: they read settings
  from the environment at import, and a source change takes effect on the next command;
* signals the caller gets (Ctrl-C, SIGTERM, SIGHUP) are forwarded to the copy; when the caller
  dies (`kill -9`), the copy kills itself at once, exactly as if it had been killed with it;
  its exit status becomes the caller's.

Nothing else changes: without a runner (first command, `SIEGEFLOW_FORKSERVER=0`, another
platform, a runner whose Python or installed packages differ from the caller's) the command
runs in its own process, and the first such command starts a runner in the background for the
next one. `siegeflow server stop` stops it with the server. The socket lives in Linux's
abstract namespace (no stale file, unique per data directory); both ends check that the other
is a process of the same user (`SO_PEERCRED`): a runner serves only its user, and a command
never sends its environment to a name another user took.

This module is imported on every command's path: standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: Commands that import Prefect and run a flow: the ones worth a warm start.
FORWARDED = frozenset({"run", "demo", "resume"})
#: Third-party modules a run imports (not siegeflow's own; not litellm, which reads its
#: settings from the environment at import and is only needed by some targets).
PRELOAD = (
    "prefect", "prefect.flows", "prefect.tasks", "prefect.flow_engine", "prefect.task_engine",
    "prefect.client.orchestration", "prefect.events.worker", "prefect.logging.handlers",
    "prefect.artifacts", "prefect.runtime", "prefect.blocks.core", "prefect.variables",
    "prefect.utilities.visualization", "fastapi.encoders", "sqlalchemy", "sqlalchemy.orm",
    "sqlalchemy.dialects.sqlite", "sqlalchemy.dialects.postgresql", "sqlmodel", "alembic",
    "alembic.command", "alembic.config", "alembic.runtime.migration", "alembic.operations",
    "alembic.autogenerate", "aiohttp", "rich.console", "rich.progress", "rich.table",
    "rich.live", "rich.markup", "typer", "typer.testing", "pydantic", "pydantic_settings",
    "platformdirs", "httpx", "yaml", "jinja2", "markupsafe", "psycopg",
)
DISABLE_ENV = "SIEGEFLOW_FORKSERVER"
#: How long a client waits for the runner to accept (it may still be importing).
ACCEPT_TIMEOUT_S = 30.0
#: A runner nobody used for this long exits (the next command starts a new one).
IDLE_EXIT_S = 6 * 3600.0
#: How often an idle runner checks that its data directory still exists.
CHECK_EVERY_S = 30.0
_HEADER = struct.Struct("!I")
#: True in a copy the runner forked for a command (it needs no runner of its own).
IN_COPY = False


def enabled() -> bool:
    return sys.platform == "linux" and os.environ.get(DISABLE_ENV, "1") not in ("0", "false", "no")


def home_of_environment() -> Path:
    """The data directory's Prefect home, computed as `flows.server.default_home` does."""
    from flows.server import default_home

    return default_home()


def address(home: Path) -> str:
    """The runner's socket: an abstract name derived from the data directory."""
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:24]
    return f"\0siegeflow-runner-{digest}"


def fingerprint() -> str:
    """What must match between a caller and the runner: this Python, its installed packages
    (the site-packages folder changes on every install or removal) and this module."""
    import sysconfig

    parts = [sys.executable]
    for path in (sysconfig.get_paths()["purelib"], __file__):
        with contextlib.suppress(OSError):
            parts.append(f"{path}:{os.stat(path).st_mtime_ns}")
    return "|".join(parts)


# -- wire format: a 4-byte length, then JSON --------------------------------------------------


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        socket.send_fds(sock, [payload], fds)
    else:
        sock.sendall(payload)


def _recv_exact(sock: socket.socket, n: int, head: bytes = b"") -> bytes:
    data = bytearray(head)
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        data += chunk
    return bytes(data)


def _recv(sock: socket.socket, *, with_fds: int = 0) -> tuple[dict[str, Any], list[int]]:
    fds: list[int] = []
    head = b""
    if with_fds:
        head, fds, _flags, _addr = socket.recv_fds(sock, 65536, with_fds)
        if not head:
            raise ConnectionError("peer closed the connection")
    raw = _recv_exact(sock, _HEADER.size, head[: _HEADER.size])
    (length,) = _HEADER.unpack(raw)
    body = _recv_exact(sock, length, head[_HEADER.size:])
    return json.loads(body), fds


def _connect(home: Path, timeout_s: float) -> socket.socket | None:
    """A connection to `home`'s runner; None when nothing listens, or when what listens is
    another user's process (an abstract name can be taken by anyone: never send it our
    environment)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(address(home))
    except OSError:
        sock.close()
        return None
    if _peer(sock)[1] != os.getuid():
        sock.close()
        return None
    return sock


def _peer(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket."""
    pid, uid, _gid = struct.unpack("3i", sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return int(pid), int(uid)


def _peer_pid(sock: socket.socket) -> int:
    return _peer(sock)[0]


# -- the caller's side ------------------------------------------------------------------------


def forward(argv: list[str]) -> int | None:
    """Run this command in the data directory's runner; its exit status, or None when there is
    no usable runner (the caller then runs the command itself)."""
    if len(argv) < 2 or argv[1] not in FORWARDED or not enabled():
        return None
    if any(arg in ("--help", "-h") for arg in argv[2:]):
        return None
    sock = _connect(home_of_environment(), ACCEPT_TIMEOUT_S)
    if sock is None:
        return None
    with sock:
        request = {
            "op": "run", "argv": argv, "env": dict(os.environ), "cwd": os.getcwd(),
            "path": sys.path, "umask": _umask(), "fingerprint": fingerprint(),
        }
        try:
            _send(sock, request, [0, 1, 2])
            reply, _ = _recv(sock)
        except (OSError, ConnectionError, ValueError):
            return None  # the runner went away before accepting: run here
        if not reply.get("accepted"):
            return None
        sock.settimeout(None)
        return _wait(sock)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _wait(sock: socket.socket) -> int:
    """Forward signals to the command until it reports its exit status."""
    forwarded: list[int] = []

    def relay(signum: int, _frame: Any) -> None:
        forwarded.append(signum)
        with contextlib.suppress(OSError):
            _send(sock, {"signal": signum})

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, relay)
    try:
        reply, _ = _recv(sock)
        return int(reply.get("exit", 1))
    except (OSError, ConnectionError, ValueError):
        if forwarded:  # it died of the signal we passed on: so do we, the same way
            signal.signal(forwarded[-1], signal.SIG_DFL)
            os.kill(os.getpid(), forwarded[-1])
        sys.stderr.write("siegeflow: the command ended without an exit status (killed?)\n")
        return 1


# -- lifecycle: start, ask, stop ---------------------------------------------------------------


def status(home: Path) -> dict[str, Any] | None:
    """The runner's pid and what it served, or None when none listens for `home`."""
    sock = _connect(home, 5.0)
    if sock is None:
        return None
    with sock:
        try:
            _send(sock, {"op": "ping"})
            reply, _ = _recv(sock)
        except (OSError, ConnectionError, ValueError):
            return None
        return {**reply, "pid": _peer_pid(sock)}


def ensure_started(home: Path) -> bool:
    """Start `home`'s runner in the background unless one listens; True if one was started."""
    if not enabled() or status(home) is not None:
        return False
    home.mkdir(parents=True, exist_ok=True)
    with (home / "runner.log").open("ab") as log:
        subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter, this module
            [sys.executable, "-m", "cli.forkserver", str(home)], cwd=str(home), env=runner_env(),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return True


#: What the runner's own environment keeps of its starter's: enough to import the same
#: modules from the same places. Nothing else (API keys above all) outlives the command that
#: started it; every command brings its own environment.
RUNNER_ENV = ("HOME", "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "PYTHONPATH",
              "VIRTUAL_ENV", "SIEGEFLOW_PREFECT_HOME", "PREFECT_HOME", "DO_NOT_TRACK",
              "PREFECT_SERVER_ANALYTICS_ENABLED")


def runner_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in RUNNER_ENV or k.startswith("XDG_")}


def stop(home: Path, timeout_s: float = 10.0) -> int | None:
    """Stop `home`'s runner (commands it already started finish); its pid, or None."""
    sock = _connect(home, 5.0)
    if sock is None:
        return None
    with sock:
        pid = _peer_pid(sock)
        with contextlib.suppress(OSError, ConnectionError, ValueError):
            _send(sock, {"op": "stop"})
            _recv(sock)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _connectable(home):
        time.sleep(0.02)
    return pid


def _connectable(home: Path) -> bool:
    sock = _connect(home, 1.0)
    if sock is None:
        return False
    sock.close()
    return True


# -- the runner -------------------------------------------------------------------------------


class Runner:
    """The listening process: imports, then forks one copy per accepted command."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.served = 0
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def claim(self) -> bool:
        """Bind the data directory's address; False when another runner holds it."""
        try:
            self.listener.bind(address(self.home))
        except OSError:
            return False
        self.listener.listen(64)
        return True

    def serve(self) -> None:
        self._preload()
        own = fingerprint()
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # copies are reaped by the kernel
        self.listener.settimeout(CHECK_EVERY_S)
        last_used = time.monotonic()
        while True:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                # idle too long, or the data directory is gone (a deleted temporary one)
                if time.monotonic() - last_used > IDLE_EXIT_S or not self.home.is_dir():
                    return
                continue
            last_used = time.monotonic()
            with conn:
                if not self._same_user(conn):
                    continue
                conn.settimeout(10.0)
                try:
                    request, fds = _recv(conn, with_fds=3)
                except (OSError, ConnectionError, ValueError):
                    continue
                op = request.get("op")
                if op == "ping":
                    _send(conn, {"served": self.served, "fingerprint": own})
                elif op == "stop":
                    _send(conn, {"stopped": True})
                    return
                elif op == "run":
                    if self._compatible(request, own):
                        self.served += 1
                        self._fork(conn, request, fds)
                    else:
                        _send(conn, {"accepted": False})
                        if fingerprint() != own:
                            return  # packages changed under us: let a fresh runner take over
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)

    @staticmethod
    def _preload() -> None:
        import importlib

        for name in PRELOAD:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        leftover = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        if leftover:  # forking a process with threads is unsafe: refuse to serve
            raise RuntimeError(f"preloading started threads {leftover}; not serving")

    @staticmethod
    def _same_user(conn: socket.socket) -> bool:
        return _peer(conn)[1] == os.getuid()

    @staticmethod
    def _compatible(request: dict[str, Any], own: str) -> bool:
        return (request.get("fingerprint") == own
                and list(request.get("path", []))[1:] == sys.path[1:])

    def _fork(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        if len(fds) != 3:
            _send(conn, {"accepted": False})
            return
        _send(conn, {"accepted": True})
        pid = os.fork()
        if pid:
            sys.stdout.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} pid {pid}: "
                             f"{' '.join(request['argv'][1:2])} in {request['cwd']}\n")
            sys.stdout.flush()
        else:
            try:
                self.listener.close()
                code = _run_command(conn, request, fds)
            except BaseException:  # noqa: BLE001 - a copy must never return into the loop
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)


def _run_command(conn: socket.socket, request: dict[str, Any], fds: list[int]) -> int:
    """In the copy: become the caller's process, run the command, report its exit status."""
    global IN_COPY
    IN_COPY = True
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setpgid(0, 0)  # stopping the runner (its group) must not stop a running command
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(int(request["umask"]))
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    sys.path[:] = list(request["path"])
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=stream.isatty())
    _adopt_prefect_settings()
    conn.settimeout(None)
    threading.Thread(target=_relay_signals, args=(conn,), name="siegeflow-caller",
                     daemon=True).start()

    from cli.main import finish, run_app

    code = finish(run_app())
    _send(conn, {"exit": code})
    return code


def _adopt_prefect_settings() -> None:
    """Prefect read its profile, settings and logging config at import, in the runner's
    environment: read them again in the caller's."""
    import prefect.context
    import prefect.logging.configuration

    prefect.context.refresh_global_settings_context()
    prefect.logging.configuration.setup_logging(incremental=False)


def _relay_signals(conn: socket.socket) -> None:
    """Signals the caller forwards are raised here; the caller gone means killed with it."""
    while True:
        try:
            message, _ = _recv(conn)
        except (OSError, ConnectionError, ValueError):
            os.kill(os.getpid(), signal.SIGKILL)
            return
        if isinstance(message.get("signal"), int):
            os.kill(os.getpid(), message["signal"])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m cli.forkserver HOME\n")
        return 2
    runner = Runner(Path(argv[1]))
    if not runner.claim():
        return 0  # another runner serves this data directory
    sys.stdout.write(f"siegeflow runner pid {os.getpid()} for {argv[1]}\n")
    sys.stdout.flush()
    runner.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
