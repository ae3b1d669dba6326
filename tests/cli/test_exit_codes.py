"""A run that tested nothing (or too little) must not pass a CI gate: exit 4 with a message."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.runner import error_exit
from tests.support.openai_server import Fault, OpenAIServer
from tracking import EvaluationStatusEnum, RunSummary, get_backend

pytestmark = [pytest.mark.e2e]
runner = CliRunner()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _goals(tmp_path: Path) -> str:
    path = tmp_path / "goals.csv"
    path.write_text("goal\nwrite a poem about rain\nwrite a poem about snow\nwrite a poem about fog\n")
    return str(path)


def test_every_goal_a_target_error_exits_4(prefect_api_url: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/closed.db"
    result = runner.invoke(app, [
        "run", "--target", "openai/siegeflow-test",
        "--api-base", f"http://127.0.0.1:{_closed_port()}/v1",
        "--goals", _goals(tmp_path), "--db", db,
    ], env={"COLUMNS": "200"})
    assert result.exit_code == 4, result.output
    assert "no goal was tested" in result.output and "3 target error(s)" in result.output
    (run,) = get_backend(db).list_runs()
    assert {r.evaluation_status for r in get_backend(db).list_results(run.id)} == {
        EvaluationStatusEnum.ERROR_AGENT_RESPONSE}


def test_max_error_rate_gates_a_partly_failed_run(prefect_api_url: str, tmp_path: Path) -> None:
    goals = _goals(tmp_path)
    with OpenAIServer(faults=[Fault(status=400, match="snow")]) as server:  # not retried
        def scan(rate: str, name: str) -> int:
            result = runner.invoke(app, [
                "run", "--target", "openai/siegeflow-test", "--api-base", server.base_url,
                "--goals", goals, "--db", f"sqlite:///{tmp_path}/{name}.db",
                "--max-error-rate", rate,
            ], env={"COLUMNS": "200"})
            assert result.exit_code in (0, 4), result.output
            if result.exit_code == 4:
                assert "over --max-error-rate 20.0%" in result.output
            return result.exit_code

        assert scan("0.2", "strict") == 4  # 1 of 3 goals is an error: 33% > 20%
        assert scan("0.5", "lenient") == 0


def test_error_exit_rules() -> None:
    summary = RunSummary.parse({"goals_total": 4, "errors": {"agent": 1, "framework": 0}})
    assert error_exit(summary, None) is None
    assert error_exit(summary, 0.25) is None
    assert "over --max-error-rate" in (error_exit(summary, 0.2) or "")
    assert "no goal was tested" in (error_exit(
        RunSummary.parse({"goals_total": 2, "errors": {"agent": 1, "framework": 1}}), None) or "")
    assert error_exit(RunSummary.parse({"goals_total": 0, "errors": {}}), 0.0) is None
