"""`siegeflow resume` for every run the CLI can make, and `resume --retry-errors` after an outage.

Each way a key can be given (the target's `--api-key-env`, a config file, a judge model's,
an attack's attacker model's, an optimizer's attacker LLM) stores the variable's NAME, so a
run can be resumed later; the local server requires the key, so a resume that lost the name
cannot succeed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from tests.support.openai_server import Fault, OpenAIServer
from tracking import EvaluationStatusEnum, StatusEnum, get_backend

pytestmark = [pytest.mark.e2e]

runner = CliRunner()
KEY_NAME, KEY = "SIEGEFLOW_TEST_RESUME_KEY", "canary-resume-key-0123456789"
MODEL = "openai/siegeflow-test"


def _goals(tmp_path: Path, n: int = 2) -> str:
    path = tmp_path / "goals.csv"
    path.write_text("goal,category\n" + "".join(f"write a poem number {i},poems\n" for i in range(n)))
    return str(path)


def _model(server: OpenAIServer) -> dict[str, Any]:
    return {"model": MODEL, "api_base": server.base_url, "api_key_env": KEY_NAME}


def _configs(server: OpenAIServer) -> dict[str, dict[str, Any]]:
    """One run config per place a key variable can be named (besides the --api-key-env flag)."""
    target = {**_model(server), "max_retries": 0}
    return {
        "config-file target": {"target": target},
        "judge model": {
            "target": target,
            "judges": {"judges": [{"name": "harmbench", "model": _model(server)}]},
        },
        "attack attacker": {
            "target": target,
            "attack": {"name": "advprefix",
                       "options": {"attacker": _model(server), "n_prefixes": 1}},
        },
        "optimizer attacker LLM": {
            "target": target,
            "optimizer": "passthrough",
            "optimizer_options": {"attacker": _model(server), "max_runs": 1},
        },
    }


def _invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"COLUMNS": "200", KEY_NAME: KEY})


def _only_run(db: str) -> Any:
    (run,) = get_backend(db).list_runs()
    return run


def _find(value: Any, name: str) -> list[Any]:
    if isinstance(value, dict):
        return [v for k, item in value.items()
                for v in ([item] if k == name else []) + _find(item, name)]
    if isinstance(value, list):
        return [v for item in value for v in _find(item, name)]
    return []


BLOCK = "siegeflow-test-resume-key"


def _block_configs(server: OpenAIServer) -> dict[str, dict[str, Any]]:
    """Keys named as Prefect Secret blocks: the target's, and an optimizer attacker's."""
    target = {"model": MODEL, "api_base": server.base_url, "max_retries": 0,
              "api_key_block": BLOCK}
    return {
        "target secret block": {"target": target},
        "optimizer attacker secret block": {
            "target": target, "optimizer": "passthrough",
            "optimizer_options": {"attacker": {"model": MODEL, "api_base": server.base_url,
                                               "api_key_block": BLOCK}, "max_runs": 1},
        },
    }


@pytest.mark.parametrize("way", ["--api-key-env flag", "config-file target", "judge model",
                                 "attack attacker", "optimizer attacker LLM",
                                 "target secret block", "optimizer attacker secret block"])
def test_a_run_resumes_whichever_way_its_key_was_named(
    prefect_api_url: str, tmp_path: Path, way: str
) -> None:
    db = f"sqlite:///{tmp_path}/resume.db"
    goals = _goals(tmp_path)
    with OpenAIServer(api_key=KEY) as server:
        if "secret block" in way:
            from prefect.blocks.system import Secret

            Secret(value=KEY).save(BLOCK, overwrite=True)
            config = tmp_path / "scan.yaml"
            config.write_text(yaml.safe_dump({**_block_configs(server)[way],
                                              "goals": {"source": goals}}))
            made = _invoke("run", "--config", str(config), "--db", db)
        elif way == "--api-key-env flag":
            made = _invoke("run", "--target", MODEL, "--api-base", server.base_url,
                           "--api-key-env", KEY_NAME, "--goals", goals, "--db", db)
        else:
            config = tmp_path / "scan.yaml"
            config.write_text(yaml.safe_dump({**_configs(server)[way], "goals": {"source": goals}}))
            made = _invoke("run", "--config", str(config), "--db", db)
        assert made.exit_code == 0, made.output
        run = _only_run(db)
        field, name = ("api_key_block", BLOCK) if "block" in way else ("api_key_env", KEY_NAME)
        names = _find(run.parameters, field)
        assert names and set(names) == {name}, run.parameters
        assert KEY not in json.dumps(run.parameters) + json.dumps(run.config)
        served = server.stats()["by_status"]
        assert "401" not in served, served  # every call carried the key
        resumed = _invoke("resume", run.id, "--db", db)
    assert resumed.exit_code == 0, resumed.output
    assert _only_run(db).status is StatusEnum.COMPLETED


def test_a_run_stored_with_a_redacted_key_name_says_how_to_resume_it(tmp_path: Path) -> None:
    """Runs recorded before names were kept: a clear exit 2, and --api-key-env supplies it."""
    db = f"sqlite:///{tmp_path}/old.db"
    backend = get_backend(db)
    params = {"target": {"model": MODEL, "api_key_env": "***"}, "attack": {"name": "baseline"}}
    # What older versions stored: write it past the store's (now name-keeping) redaction.
    run_id = backend.create_run(attack_type="baseline", config={"kind": "attack"},
                                parameters={"target": {"model": MODEL}}, status=StatusEnum.FAILED)
    backend.update_run(run_id, status=StatusEnum.FAILED)
    with backend.engine.begin() as conn:
        import sqlalchemy as sa

        from tracking.models import RunRecord

        table = RunRecord.__table__  # type: ignore[attr-defined]  # set by the SQLModel metaclass
        conn.execute(sa.update(table).where(table.c.id == run_id).values(parameters=params))
    result = _invoke("resume", run_id, "--db", db)
    assert result.exit_code == 2, result.output
    assert "target.api_key_env" in result.output and "--api-key-env" in result.output
    assert "Traceback" not in result.output


def test_resume_retry_errors_re_requests_what_an_outage_turned_into_errors(
    prefect_api_url: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path}/outage.db"
    goals = _goals(tmp_path, n=3)
    outage = [Fault(status=503)]
    with OpenAIServer(faults=outage) as server:
        made = _invoke("run", "--target", MODEL, "--api-base", server.base_url,
                       "--goals", goals, "--db", db)
        run = _only_run(db)
        backend = get_backend(db)
        attempts = backend.list_attempts(run.id)
        assert attempts and all(a.error for a in attempts), made.output
        assert {r.evaluation_status for r in backend.list_results(run.id)} == {
            EvaluationStatusEnum.ERROR_AGENT_RESPONSE}
        server.configure(faults=[])  # the target is back
        server.reset()
        plain = _invoke("resume", run.id, "--db", db)
        assert server.stats()["chat_requests"] == 0, plain.output  # errors are final without it
        retried = _invoke("resume", run.id, "--db", db, "--retry-errors")
        assert retried.exit_code == 0, retried.output
        assert server.stats()["chat_requests"] == len(attempts)
    assert f"Retrying {len(attempts)} attempt(s)" in retried.output
    attempts = backend.list_attempts(run.id)
    assert all(a.error is None and a.response for a in attempts)
    assert EvaluationStatusEnum.ERROR_AGENT_RESPONSE not in {
        r.evaluation_status for r in backend.list_results(run.id)}
    assert _only_run(db).status is StatusEnum.COMPLETED


def test_retry_errors_stays_within_the_budget(prefect_api_url: str, tmp_path: Path) -> None:
    """An answer costs far more than the budget here: one re-request, then the budget stops."""
    db = f"sqlite:///{tmp_path}/budget.db"
    config = tmp_path / "scan.yaml"
    with OpenAIServer(faults=[Fault(status=503)]) as server:
        config.write_text(yaml.safe_dump({
            "target": {"model": MODEL, "api_base": server.base_url, "max_retries": 0,
                       "input_cost_per_token": 0.01, "output_cost_per_token": 0.01},
            "goals": {"source": _goals(tmp_path, n=4)}, "concurrency": 1, "budget_usd": 0.05,
        }))
        _invoke("run", "--config", str(config), "--db", db)
        run = _only_run(db)
        server.configure(faults=[])
        server.reset()
        _invoke("resume", run.id, "--db", db, "--retry-errors")
        assert server.stats()["chat_requests"] == 1
    attempts = get_backend(db).list_attempts(run.id)
    assert sum(a.error is None for a in attempts) == 1
    assert sum(a.error is not None for a in attempts) == len(attempts) - 1  # still errors


def test_resume_retry_errors_re_attacks_optimizer_goals_that_only_saw_target_errors(
    prefect_api_url: str, tmp_path: Path
) -> None:
    """An optimizer run during an outage: every run of goal 0 and 1 is a 503, goal 2 was
    answered once. `--retry-errors` attacks goals 0 and 1 again (run numbers continue), not 2."""
    db = f"sqlite:///{tmp_path}/optimize-outage.db"
    goals = tmp_path / "goals.jsonl"
    goals.write_text("".join(json.dumps({"id": f"g{i}", "goal": f"write a poem number {i}"}) + "\n"
                             for i in range(3)))
    config = tmp_path / "optimize.yaml"
    with OpenAIServer(faults=[Fault(status=503, match="poem number [01]")]) as server:
        config.write_text(yaml.safe_dump({
            "target": {"model": MODEL, "api_base": server.base_url, "max_retries": 0,
                       "api_key_env": KEY_NAME},
            "goals": {"source": str(goals)}, "concurrency": 1,
            "optimizer": "passthrough", "optimizer_options": {"runs": 2, "max_runs": 2},
        }))
        _invoke("run", "--config", str(config), "--db", db)
        run = _only_run(db)
        backend = get_backend(db)
        before = {a.id: a for a in backend.list_attempts(run.id)}
        results = {r.goal: r for r in backend.list_results(run.id)}
        errored = {r.id for g, r in results.items() if g != "write a poem number 2"}
        assert {before[i].result_id for i in before if before[i].error} == errored
        server.configure(faults=[])  # the target is back
        server.reset()
        plain = _invoke("resume", run.id, "--db", db)
        assert server.stats()["chat_requests"] == 0, plain.output  # a plain resume sends nothing
        retried = _invoke("resume", run.id, "--db", db, "--retry-errors")
        assert retried.exit_code == 0, retried.output
        sent = server.stats()["chat_requests"]
    assert "Retrying the goals whose runs all ended as target errors" in retried.output
    after = backend.list_attempts(run.id)
    new = [a for a in after if a.id not in before]
    assert {a.result_id for a in new} == errored and sent == len(new) == 4
    assert all(a.error is None and a.response for a in new)
    for result_id in errored:  # numbering continues after the errored runs
        variants = sorted(a.variant for a in after if a.result_id == result_id)
        assert variants == ["run-0", "run-1", "run-2", "run-3"]
    assert EvaluationStatusEnum.ERROR_AGENT_RESPONSE not in {
        r.evaluation_status for r in backend.list_results(run.id)}
    assert _only_run(db).status is StatusEnum.COMPLETED
