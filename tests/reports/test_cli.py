"""`siegeflow report` and `siegeflow compare` exit codes and outputs, on flow-recorded runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.reports.conftest import Recorded
from tests.reports.synthetic import record_synthetic_run
from tracking import StatusEnum, get_backend

pytestmark = pytest.mark.e2e
runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_report_html_is_written_and_exits_0(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    code, _ = _run("report", recorded.before, "--db", recorded.db_url, "-o", str(out))
    assert code == 0 and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("fmt", ["junit", "sarif"])
def test_ci_formats_follow_the_exit_codes(recorded: Recorded, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    args = ["report", recorded.before, "--db", recorded.db_url, "--format", fmt, "-o", str(out)]
    assert _run(*args, "--fail-over", "0.5")[0] == 0  # ASR 40% <= 50%
    assert _run(*args, "--fail-over", "0.2")[0] == 3  # ASR 40% > 20%: the file is still written
    text = out.read_text(encoding="utf-8")
    if fmt == "junit":
        assert ET.fromstring(text).find("testsuite").get("failures") == "2"
    else:
        assert len(json.loads(text)["runs"][0]["results"]) == 2


def test_junit_to_stdout(recorded: Recorded) -> None:
    code, output = _run("report", recorded.before, "--db", recorded.db_url, "-f", "junit")
    assert code == 0 and ET.fromstring(output[output.index("<?xml"):]).tag == "testsuites"


def test_bad_input_exits_2(recorded: Recorded) -> None:
    db = ["--db", recorded.db_url]
    assert _run("report", "no-such-run", *db)[0] == 2
    assert _run("report", recorded.before, *db, "--format", "pdf")[0] == 2
    assert _run("report", recorded.before, *db, "--fail-over", "1.5")[0] == 2
    assert _run("compare", recorded.before, "no-such-run", *db)[0] == 2


def test_failed_run_exits_1(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'failed.db'}"
    backend = get_backend(db_url)
    run_id = record_synthetic_run(backend, 5)
    backend.update_run(run_id, status=StatusEnum.FAILED)
    assert _run("report", run_id, "--db", db_url, "-f", "sarif", "-o",
                str(tmp_path / "x.sarif"))[0] == 1
    sarif = json.loads((tmp_path / "x.sarif").read_text(encoding="utf-8"))
    assert sarif["runs"][0]["invocations"][0]["executionSuccessful"] is False


def test_compare_in_the_terminal_and_as_html(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    code, output = _run("compare", recorded.before, recorded.after, "--db", recorded.db_url,
                        "-o", str(out))
    assert code == 0
    assert "newly broken" in output and "Fixed: 1" in output and "g-gamma" in output
    assert "Newly broken (regressions): 1" in output
    assert 'data-change="newly-broken"' in out.read_text(encoding="utf-8")
    code, _ = _run("compare", recorded.before, recorded.after, "--db", recorded.db_url,
                   "--fail-on-regression")
    assert code == 3
    # The other direction has a regression too (ALPHA breaks again), and none without the flag.
    assert _run("compare", recorded.after, recorded.before, "--db", recorded.db_url)[0] == 0
