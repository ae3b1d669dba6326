"""The `siegeflow` command: fast paths, bad input, exit codes, and the demo itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.support.openai_server import OpenAIServer
from tracking import EvaluationStatusEnum, StatusEnum, get_backend

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def siegeflow(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})},
    )


def test_help_and_runs_list_do_not_import_prefect_or_litellm(tmp_path: Path) -> None:
    code = (
        "import sys; from cli.main import app; from typer.testing import CliRunner;"
        f"r = CliRunner().invoke(app, ['runs', 'list', '--db', 'sqlite:///{tmp_path}/x.db']);"
        "assert r.exit_code == 0, r.output; assert 'No runs recorded yet' in r.output;"
        "heavy = [m for m in ('prefect', 'litellm') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
    result = siegeflow("--help")
    assert result.returncode == 0 and "demo" in result.stdout and "resume" in result.stdout


#: What `runs list` and `runs show` must not import (issue 23: "stay under a second"): the flow
#: machinery, the model clients, Alembic for a store at head, the judges themselves and targets
#: (the citation reads `judges.citation.SHIPPED_MEASURES`), tracking's run-time writers.
READ_PATH_NEVER_IMPORTS = (
    "prefect", "litellm", "alembic", "flows", "tasks", "attacks", "optimizers", "goals",
    "targets", "judges.base", "judges.registry", "judges.agreement", "judges.panel",
    "tracking.coordinator", "tracking.tracker", "tracking.categories",
)


def test_runs_list_and_show_import_only_what_they_read(tmp_path: Path) -> None:
    """Each command pays for its imports: a store at head is opened without Alembic, a run's
    panel is cited without importing the judges. Checked on modules, not on time."""
    from tracking import NewAttempt, NewResult, RunSummary

    url = f"sqlite:///{tmp_path}/runs.db"
    backend = get_backend(url)
    run_id = backend.create_run(attack_type="templates", target_description="t",
                                parameters={"judges": {"judges": ["refusal", "harmbench"],
                                                       "rule": "any"}})
    (result,) = backend.create_results(run_id, [NewResult(goal="the goal", goal_index=0)])
    (attempt,) = backend.upsert_attempts(run_id, [NewAttempt(
        result_id=result.id, prompt_hash="h", technique="templates", variant="v", prompt="p")])
    backend.record_completion(attempt, response="the answer")
    backend.record_judgment(attempt, "refusal", success=True, score=1.0)
    backend.update_run(run_id, status=StatusEnum.COMPLETED, summary=RunSummary(
        goals_total=1, successful=1, asr=1.0, asr_denominator=1, judge_rule="any",
        judge_keys=["refusal", "harmbench"]).as_dict())
    backend.close()
    code = (
        "import sys; from cli.main import app; from typer.testing import CliRunner\n"
        f"for args, shown in ((['runs', 'list', '--db', {url!r}], {run_id!r}),\n"
        f"                    (['runs', 'show', {run_id!r}, '--db', {url!r}], 'the goal'),\n"
        f"                    (['runs', 'list', '--db', 'sqlite:///{tmp_path}/new.db'], 'No runs')):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    assert r.exit_code == 0 and shown in r.output, (args, r.output)\n"
        f"never = {READ_PATH_NEVER_IMPORTS!r}\n"
        "print(sorted(m for m in sys.modules if m in never or m.startswith(tuple(n + '.' for n in never))))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_one_entry_module_starts_the_command() -> None:
    """The console script and `python -m cli` both start in `cli.__main__` (no module of cli
    imports it back: the import-linter contract), so nothing is imported twice."""
    from importlib.metadata import entry_points

    from cli.__main__ import main

    (script,) = entry_points(group="console_scripts", name="siegeflow")
    assert script.value == "cli.__main__:main" and script.load() is main
    result = siegeflow("runs", "--help")  # python -m cli: the same start-up
    assert result.returncode == 0 and "list" in result.stdout


def _exit_in_a_child(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    code = ("import atexit, pathlib, sys, threading, time\n"
            "from cli.__main__ import _exit\n"
            f"out = pathlib.Path({str(tmp_path / 'out.txt')!r})\n" + body)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_the_fast_exit_still_runs_exit_handlers_and_flushes_output(tmp_path: Path) -> None:
    """Commands end with os._exit (no heap finalization): what atexit would do still happens,
    buffered output is written, and the exit status is the command's."""
    done = _exit_in_a_child(tmp_path, (
        "atexit.register(lambda: out.write_text('handler ran'))\n"
        "sys.stdout.write('buffered, no newline')\n"
        "_exit(3)\n"))
    assert done.returncode == 3
    assert done.stdout == "buffered, no newline"
    assert (tmp_path / "out.txt").read_text() == "handler ran"


def test_a_command_without_prefect_waits_for_its_running_thread(tmp_path: Path) -> None:
    """A thread still working when a Prefect-free command returns is not cut off by the
    fast exit: the process exits the normal way, after the thread."""
    done = _exit_in_a_child(tmp_path, (
        "def late():\n"
        "    time.sleep(0.5)\n"
        "    out.write_text('thread finished')\n"
        "threading.Thread(target=late).start()\n"
        "_exit(0)\n"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.txt").read_text() == "thread finished"


def test_attacks_and_judges_list_what_is_registered() -> None:
    attacks = runner.invoke(app, ["attacks"], env={"COLUMNS": "200"})
    assert attacks.exit_code == 0
    for name in ("baseline", "templates", "encodings", "advprefix", "suite"):
        assert name in attacks.output
    judges = runner.invoke(app, ["judges"], env={"COLUMNS": "200"})
    assert judges.exit_code == 0
    for name in ("refusal", "harmbench", "jailbreakbench", "strongreject"):
        assert name in judges.output
    optimizers = runner.invoke(app, ["optimizers"], env={"COLUMNS": "200"})
    assert optimizers.exit_code == 0
    for name in ("passthrough", "pair", "tap", "crescendo", "injection"):
        assert name in optimizers.output


def test_bad_config_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    config = tmp_path / "scan.yaml"
    config.write_text("target:\n  model: openai/x\nconcurrency: -3\njudges:\n  rule: sometimes\n")
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert str(config) in result.output
    assert "concurrency" in result.output and "judges.rule" in result.output


def test_bad_goal_file_names_file_and_line(tmp_path: Path) -> None:
    goals = tmp_path / "goals.csv"
    goals.write_text("goal,category\nfine goal,a\n,b\n")
    result = runner.invoke(app, ["run", "--target", "openai/x", "--goals", str(goals)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "goals.csv" in result.output and "line 3" in result.output


def test_unknown_run_is_bad_input(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/x.db"
    assert runner.invoke(app, ["runs", "show", "nope", "--db", db]).exit_code == 2
    assert runner.invoke(app, ["resume", "nope", "--db", db]).exit_code == 2


@pytest.mark.e2e
def test_run_fail_over_show_and_export(prefect_api_url: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/cli.db"
    with OpenAIServer() as server:
        result = runner.invoke(app, [
            "run", "--target", "openai/siegeflow-test", "--api-base", server.base_url,
            "--attack", "templates", "--attack-option", 'variants=["role_play"]',
            "--judge", "refusal", "--limit", "3", "--db", db, "--fail-over", "0.5",
        ], env={"COLUMNS": "160"})
    assert result.exit_code == 3, result.output  # role-play gets through: ASR 100% > 50%
    assert "exceeds --fail-over" in result.output
    backend = get_backend(db)
    (run,) = backend.list_runs()
    assert run.status is StatusEnum.COMPLETED
    assert all(r.evaluation_status is EvaluationStatusEnum.SUCCESSFUL_JAILBREAK
               for r in backend.list_results(run.id))
    shown = runner.invoke(app, ["runs", "show", run.id, "--db", db], env={"COLUMNS": "160"})
    assert shown.exit_code == 0 and "BROKEN" in shown.output
    exported = runner.invoke(app, ["export", run.id, "--db", db, "--format", "jsonl"])
    assert exported.exit_code == 0
    lines = [json.loads(line) for line in exported.output.splitlines() if line.strip()]
    assert len(lines) == 3


@pytest.mark.e2e
@pytest.mark.slow
def test_demo_runs_the_embedded_target_end_to_end(prefect_api_url: str, tmp_path: Path) -> None:
    """`siegeflow demo` as a user runs it: local SmolLM2 behind the guardrail, real llama.cpp."""
    db = f"sqlite:///{tmp_path}/demo.db"
    result = siegeflow("demo", "--goals", "2", "--db", db, timeout=600,
                       env={"PREFECT_API_URL": prefect_api_url, "COLUMNS": "160"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Run summary" in result.stdout and "attack success rate" in result.stdout
    # The default panel (offline judge) is named with its validated agreement, and the ASR
    # carries its interval and n.
    assert "Judged by offline:" in result.stdout and "agreement with human labels" in result.stdout
    assert "judged goals)" in result.stdout
    backend = get_backend(db)
    (run,) = backend.list_runs()
    assert run.status is StatusEnum.COMPLETED
    results = backend.list_results(run.id)
    assert len(results) == 2
    assert all(r.evaluation_status is not EvaluationStatusEnum.NOT_EVALUATED for r in results)
    attempts = backend.list_attempts(run.id)
    assert {a.technique for a in attempts} == {"baseline", "templates", "encodings", "bon"}
    # Best-of-N in the demo: two samples per goal, distinct augmentations of the goal.
    samples = [a for a in attempts if a.technique == "bon"]
    assert sorted(a.meta["sample"] for a in samples) == [0, 0, 1, 1]
    assert len({a.prompt_hash for a in samples}) == 4
    assert all(a.completed_at is not None and a.error is None for a in attempts)
    assert run.id in result.stdout
    report = run.summary["report_path"]
    assert Path(report).is_file() and f"HTML report: {report}" in result.stdout.replace("\n", "")


def test_a_store_url_with_a_password_never_becomes_a_flow_parameter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cli.runner import parameter_safe_db_url
    from tracking import default_db_url

    monkeypatch.delenv("SIEGEFLOW_DB_URL", raising=False)
    plain = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert parameter_safe_db_url(plain) == plain
    secret = "postgresql+psycopg://scanner:s3cret-pw@db.internal:5432/siegeflow"
    assert parameter_safe_db_url(secret) is None
    assert default_db_url() == secret  # the flow finds it through the environment


def test_runs_list_at_80_columns_keeps_every_figure_readable(tmp_path: Path) -> None:
    """A pipe or a narrow terminal (80 columns): each run's id, status, goals and broken count
    are printed whole (the wide table squeezed them to nothing)."""
    from tests.reports.synthetic import record_synthetic_run

    db = f"sqlite:///{tmp_path}/narrow.db"
    backend = get_backend(db)
    run_id = record_synthetic_run(backend, 12, judges=("refusal",))
    (run,) = backend.list_runs()
    from tracking import RunSummary

    summary = RunSummary.parse(run.summary)
    for width, wide in (("80", False), ("200", True)):
        shown = runner.invoke(app, ["runs", "list", "--db", db], env={"COLUMNS": width})
        assert shown.exit_code == 0, shown.output
        lines = shown.output.splitlines()
        assert max(len(line) for line in lines) <= int(width)
        assert (run_id in shown.output) and ("COMPLETED" in shown.output)
        if not wide:
            assert f"goals {summary.goals_total} · broken {summary.successful}" in shown.output
            assert "judged by refusal" in shown.output
