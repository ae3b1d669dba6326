"""`siegeflow server stop` refuses while runs are in progress and names them; `--force` stops.

In-process with the server's record and API stubbed: what is checked is the decision and the
message (tests/cli/test_server.py covers the real server's lifecycle)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import flows.server as server_mod
from cli.main import app
from flows.server import ServerRecord, active_flow_runs
from tracking import StatusEnum, get_backend

runner = CliRunner()


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A 'running' server whose flow runs and stop are stubbed; a SQLite default store."""
    seen: dict[str, Any] = {"flow_runs": [], "stopped": 0}
    record = ServerRecord(pid=1, port=9, home=str(tmp_path), started_at=0.0)

    def stop(home: Path, grace_s: float = 15.0) -> ServerRecord:
        seen["stopped"] += 1
        return record

    monkeypatch.setattr(server_mod, "server_status", lambda home: record)
    monkeypatch.setattr(server_mod, "active_flow_runs", lambda url, fresh_s: seen["flow_runs"])
    monkeypatch.setattr(server_mod, "stop_server", stop)
    seen["db"] = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("SIEGEFLOW_DB_URL", seen["db"])
    monkeypatch.setenv("SIEGEFLOW_PREFECT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return seen


def _stop(*args: str) -> Any:
    return runner.invoke(app, ["server", "stop", *args], env={"COLUMNS": "200"})


def test_stop_with_nothing_in_progress_stops(stubbed: dict[str, Any]) -> None:
    get_backend(stubbed["db"]).create_run(attack_type="x", target_description="t",
                                          status=StatusEnum.COMPLETED)
    result = _stop()
    assert result.exit_code == 0, result.output
    assert stubbed["stopped"] == 1 and "Stopped the local Prefect server" in result.output


def test_stop_refuses_while_a_run_beats_or_a_flow_run_runs_and_names_them(
    stubbed: dict[str, Any],
) -> None:
    backend = get_backend(stubbed["db"])
    run_id = backend.create_run(attack_type="x", target_description="t",
                                status=StatusEnum.RUNNING)
    backend.heartbeat(run_id)
    stubbed["flow_runs"] = ["clever-fox (Running)"]
    result = _stop()
    assert result.exit_code == 1, result.output
    assert stubbed["stopped"] == 0
    assert run_id in result.output and "clever-fox (Running)" in result.output
    assert "--force" in result.output and "Traceback" not in result.output
    forced = _stop("--force")
    assert forced.exit_code == 0 and stubbed["stopped"] == 1, forced.output


def test_a_stale_run_does_not_block_stop(stubbed: dict[str, Any],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    backend = get_backend(stubbed["db"])
    run_id = backend.create_run(attack_type="x", target_description="t",
                                status=StatusEnum.RUNNING)
    backend.heartbeat(run_id)
    monkeypatch.setenv("SIEGEFLOW_STALE_AFTER_S", "0.001")  # its process died: stale, not live
    result = _stop()
    assert result.exit_code == 0, result.output


@pytest.fixture
def api() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A Prefect API with three Running flow runs: one whose state just changed, one that beats,
    one silent for an hour (a `siegeflow run` killed long ago)."""
    from datetime import UTC, datetime, timedelta

    bodies: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    runs = [
        {"id": "a", "name": "fresh", "state": {"name": "Submitting",
                                              "timestamp": now.isoformat()}},
        {"id": "b", "name": "beating", "state": {"name": "Running", "timestamp": (
            now - timedelta(hours=1)).isoformat()}},
        {"id": "c", "name": "silent", "state": {"name": "Running", "timestamp": (
            now - timedelta(hours=1)).isoformat()}},
    ]
    beats = {"prefect.flow-run.b"}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = bodies[-1]
            if self.path.endswith("/flow_runs/filter"):
                answer: Any = runs
            else:
                (resource,) = body["filter"]["resource"]["id"]
                answer = {"events": [{"id": "e"}] if resource in beats else []}
            out = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            return None

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api", bodies
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_only_flow_runs_that_show_life_count_as_in_progress(
    api: tuple[str, list[dict[str, Any]]],
) -> None:
    url, bodies = api
    assert active_flow_runs(url, fresh_s=60) == ["fresh (Submitting)", "beating (Running)"]
    assert bodies[0]["flow_runs"]["state"]["type"]["any_"] == ["PENDING", "RUNNING", "CANCELLING"]
    assert set(bodies[1]["filter"]["event"]["name"]) == {"prefect.flow-run.heartbeat",
                                                         "siegeflow.flow-run.heartbeat"}
    assert all(b["limit"] <= 50 for b in bodies)
