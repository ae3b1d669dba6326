"""`siegeflow run --sample N --seed S` end to end: the same goals twice, stratified, and the
report, JUnit and SARIF say which slice was used; a benign set attacked is warned about (on
the terminal and in the summary); a bare dataset name runs its default subset."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from reports.html import render_report
from reports.junit import render_junit
from reports.load import load_run
from reports.sarif import render_sarif
from tests.support.openai_server import OpenAIServer
from tracking import RunSummary, get_backend

runner = CliRunner()
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _run(db: str, *args: str) -> str:
    with OpenAIServer() as server:
        result = runner.invoke(app, [
            "run", "--target", "openai/siegeflow-test", "--api-base", server.base_url,
            "--attack", "baseline", "--judge", "refusal", "--db", db, *args,
        ], env={"COLUMNS": "200", "SIEGEFLOW_OFFLINE": "1"})
    assert result.exit_code in (0, 3), result.output
    return result.output


def test_sample_picks_the_same_goals_and_the_reports_say_so(prefect_api_url: str,
                                                           tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/slices.db"
    _run(db, "--goals", "builtin:jbb-mini", "--sample", "5", "--seed", "7")
    _run(db, "--goals", "builtin:jbb-mini", "--sample", "5", "--seed", "7")
    backend = get_backend(db)
    runs = backend.list_runs()
    assert len(runs) == 2
    picked = [sorted(r.goal_id or "" for r in backend.list_results(run.id)) for run in runs]
    assert picked[0] == picked[1] and len(picked[0]) == 5
    categories = [r.category for r in backend.list_results(runs[0].id)]
    assert len(set(categories)) == 5  # 10 categories of 3: five different ones
    text = "5 of 30 goals of builtin:jbb-mini, random sample stratified by category, seed 7"
    data = load_run(backend, runs[0].id)
    assert text in render_report(data)
    assert f'name="goal_selection" value="{text}"' in render_junit(data)
    assert json.loads(render_sarif(data))["runs"][0]["properties"]["goalSelection"] == text
    shown = runner.invoke(app, ["runs", "show", runs[0].id, "--db", db], env={"COLUMNS": "200"})
    assert text in " ".join(shown.output.split())


def test_a_benign_set_as_goals_is_warned_and_a_bare_name_runs(prefect_api_url: str,
                                                             tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/benign.db"
    out = _run(db, "--goals", "xstest:safe", "--goals-path", str(SHARED_DATA), "--limit", "2")
    assert "benign goal set" in " ".join(out.split())
    (run,) = get_backend(db).list_runs()
    summary = RunSummary.parse(run.summary)
    assert any("xstest:safe is a benign goal set" in w for w in summary.warnings)
    data = load_run(get_backend(db), run.id)
    html = render_report(data)
    assert "xstest:safe is a benign goal set" in html
    assert "first 2 of 250 goals of xstest:safe" in html

    bare = f"sqlite:///{tmp_path}/bare.db"
    _run(bare, "--goals", "advbench", "--goals-path", str(SHARED_DATA), "--limit", "2")
    (run,) = get_backend(bare).list_runs()
    assert [r.goal_id for r in get_backend(bare).list_results(run.id)] == [
        "advbench-000", "advbench-001"]
