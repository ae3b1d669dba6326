"""The command runner's socket, checked from the caller's side without a Prefect server."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from cli import forkserver

SQUATTER = """
import socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(sys.argv[1].encode().replace(b"\\\\0", b"\\0", 1).decode())
sock.listen(1)
print("listening", flush=True)
conn, _ = sock.accept()
conn.settimeout(3)
got = b""
try:
    while chunk := conn.recv(65536):
        got += chunk
except OSError:
    pass
print(len(got), flush=True)
"""


@pytest.mark.skipif(os.getuid() != 0 or not Path("/usr/bin/python3").exists(),
                    reason="needs root and a system Python to start a process as another user")
def test_a_command_never_sends_its_environment_to_another_users_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An abstract socket name can be taken by anyone: a caller must check who listens."""
    home = tmp_path / "prefect"
    name = forkserver.address(home).replace("\0", "\\0", 1)
    squatter = subprocess.Popen(
        ["/usr/bin/python3", "-c", SQUATTER, name], user=65534, group=65534,
        stdout=subprocess.PIPE, text=True, cwd="/",
    )
    try:
        assert squatter.stdout is not None
        assert squatter.stdout.readline().strip() == "listening"
        monkeypatch.setenv("SIEGEFLOW_PREFECT_HOME", str(home))
        monkeypatch.setenv("SIEGEFLOW_TEST_SECRET", "sk-must-not-leave-this-process")
        started = time.monotonic()
        assert forkserver.forward(["siegeflow", "run", "--goals", "x.csv"]) is None
        assert forkserver.status(home) is None
        assert time.monotonic() - started < 10  # refused at once, not after a timeout
        out, _ = squatter.communicate(timeout=30)
        assert out.strip() == "0"  # it was connected to, and sent nothing
    finally:
        if squatter.poll() is None:
            squatter.kill()
            squatter.wait()


def test_only_flow_running_commands_are_forwarded(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("SIEGEFLOW_PREFECT_HOME", str(tmp_path / "none-listens"))
    for argv in (["siegeflow"], ["siegeflow", "runs", "list"], ["siegeflow", "run", "--help"],
                 ["siegeflow", "run"]):  # the last: nothing listens for this home
        assert forkserver.forward(argv) is None
    monkeypatch.setenv("SIEGEFLOW_FORKSERVER", "0")
    assert not forkserver.enabled()
