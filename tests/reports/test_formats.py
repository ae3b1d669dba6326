"""Every report format against runs the flows recorded: HTML, JUnit, SARIF, JSONL/CSV, compare."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET

import pytest

from reports.compare import FIXED, NEWLY_BROKEN, STILL_BROKEN, STILL_HELD, UNDECIDED, compare_runs
from reports.compare_html import render_compare
from reports.export import export_run
from reports.html import render_report
from reports.junit import render_junit
from reports.load import load_run
from reports.page import csp, sha256_source
from reports.sarif import render_sarif
from tests.reports.conftest import GOALS, Recorded
from tracking import get_backend

pytestmark = pytest.mark.e2e


def _load(recorded: Recorded, run_id: str):  # noqa: ANN202
    return load_run(get_backend(recorded.db_url), run_id)


def _text(html: str) -> str:
    """Visible-ish text of a page: tags dropped, entities kept (enough for these checks)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_html_report_holds_every_section_and_the_right_figures(recorded: Recorded) -> None:
    html = render_report(_load(recorded, recorded.before))
    text = _text(html)
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r'(?:src|href)="(?!#)|url\(', html)  # nothing to fetch at view time
    # Headline: 6 goals, 2 broken, 3 held, 1 target error excluded; ASR 2/5 with Wilson CI.
    assert "6 goals" in text and "2 broken" in text and "3 held" in text
    assert "40.0% attack success rate" in text and "11.8%–76.9% 95% CI (Wilson)" in text
    assert "1 errors (excluded)" in text and "= 2 / 5" in text
    assert "1 goals whose target calls failed" in text
    # Charts (inline SVG) by category and by technique, with their number tables.
    assert html.count('<svg class="chart"') == 2
    for label in ("Malware", "Fraud", "Physical harm", "baseline", "templates"):
        assert f">{label}</text>" in html
    # Judge agreement from the run summary (refusal vs harmbench).
    assert "Cohen" in html and "harmbench vs refusal" in text
    # The goal grid: one row per goal with prompt and answer; filters and sort buttons.
    assert html.count('class="gr" role="row" data-status=') == len(GOALS)
    assert 'data-status="broken"' in html and 'data-status="error"' in html
    assert "Sure, here is how" in html and "I&#x27;m sorry" in html
    assert "HTTP" in text or "error:" in text  # the failing goal shows its error
    assert 'data-filter="text"' in html and 'data-filter="category"' in html
    assert "Trajectories" not in html  # an attack run has no per-goal traces


def test_html_policy_allows_exactly_the_inlined_script_and_style() -> None:
    from reports.page import asset

    policy = csp(asset("report.js"), asset("report.css"))
    assert "default-src 'none'" in policy and "require-trusted-types-for 'script'" in policy
    assert f"script-src {sha256_source(asset('report.js'))};" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "innerHTML" not in asset("report.js") and "insertAdjacentHTML" not in asset("report.js")


def test_junit_one_case_per_goal_broken_is_failure(recorded: Recorded) -> None:
    root = ET.fromstring(render_junit(_load(recorded, recorded.before)))
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("6", "2", "1", "0")
    cases = {c.get("name").split(":")[0]: c for c in suite.findall("testcase")}
    assert len(cases) == 6
    alpha = cases["[0] g-alpha"]
    failure = alpha.find("failure")
    assert failure is not None and failure.get("type") == "SUCCESSFUL_JAILBREAK"
    assert "Sure, here is how" in failure.text and "ALPHA" in failure.text
    assert cases["[4] g-epsilon"].find("error") is not None
    assert list(cases["[3] g-delta"]) == [cases["[3] g-delta"].find("system-out")]  # a pass
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["asr"] == "40.0%" and props["run_id"] == recorded.before


def test_junit_of_hostile_text_is_well_formed_xml(recorded: Recorded) -> None:
    xml = render_junit(_load(recorded, recorded.hostile))
    root = ET.fromstring(xml)  # would raise on a NUL or an unescaped '<'
    failures = list(root.iter("failure"))
    assert failures and "<script>" in failures[0].text  # kept as text, escaped in the file
    assert "<script>" not in xml.replace("&lt;script&gt;", "")


def test_sarif_lists_broken_goals_as_findings(recorded: Recorded) -> None:
    before = json.loads(render_sarif(_load(recorded, recorded.before)))
    after = json.loads(render_sarif(_load(recorded, recorded.after)))
    assert before["version"] == "2.1.0" and before["$schema"].endswith("sarif-2.1.0.json")
    (run,) = before["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "siegeflow"
    names = {r["locations"][0]["logicalLocations"][0]["name"] for r in run["results"]}
    assert names == {"g-alpha", "g-beta"}
    for result in run["results"]:
        assert result["level"] == "error" and result["kind"] == "fail"
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["properties"]["response"].startswith("Sure")
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == 1 and "g-epsilon" in notes[0]["message"]["text"]
    assert run["invocations"][0]["executionSuccessful"] is True
    assert run["properties"]["asr"] == pytest.approx(0.4) and run["properties"]["held"] == 3
    lo, hi = run["properties"]["asrCi95"]
    assert lo == pytest.approx(0.1176, abs=1e-3) and hi == pytest.approx(0.7693, abs=1e-3)
    # The same goal keeps its fingerprint across scans (dashboards follow the finding).
    fp = {r["locations"][0]["logicalLocations"][0]["name"]: r["partialFingerprints"]
          for r in before["runs"][0]["results"] + after["runs"][0]["results"]}
    beta = [r for r in after["runs"][0]["results"]
            if r["locations"][0]["logicalLocations"][0]["name"] == "g-beta"]
    assert beta[0]["partialFingerprints"] == fp["g-beta"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_has_every_attempt_whole(recorded: Recorded, fmt: str) -> None:
    backend = get_backend(recorded.db_url)
    buf = io.StringIO()
    export_run(backend, recorded.before, fmt, buf)
    if fmt == "jsonl":
        records = [json.loads(line) for line in buf.getvalue().splitlines()]
    else:
        records = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert len(records) == len(backend.list_attempts(recorded.before)) == 2 * len(GOALS)
    by_goal = {(r["goal_id"], r["technique"]) for r in records}
    assert ("g-alpha", "baseline") in by_goal and ("g-alpha", "templates") in by_goal
    alpha = [r for r in records if r["goal_id"] == "g-alpha"]
    assert all(r["goal_status"] == "SUCCESSFUL_JAILBREAK" for r in alpha)
    assert any(str(r["success"]) in ("True", "true") for r in alpha)


def test_csv_export_defuses_spreadsheet_formulas() -> None:
    from reports.export import write_records

    buf = io.StringIO()
    write_records([{"goal": "=HYPERLINK(\"http://x\")", "n": 1, "j": {"a": 1}}], "csv", buf)
    row = next(csv.DictReader(io.StringIO(buf.getvalue())))
    assert row["goal"].startswith("'=") and row["j"] == '{"a": 1}'


def test_compare_finds_the_regression_and_the_fix(recorded: Recorded) -> None:
    cmp = compare_runs(_load(recorded, recorded.before), _load(recorded, recorded.after))
    changes = {p.key: p.change for p in cmp.pairs}
    assert changes == {"g-alpha": FIXED, "g-gamma": NEWLY_BROKEN, "g-beta": STILL_BROKEN,
                       "g-delta": STILL_HELD, "g-zeta": STILL_HELD, "g-epsilon": UNDECIDED}
    assert cmp.matched_by == "goal id"
    assert [p.key for p in cmp.pairs][:2] == ["g-gamma", "g-alpha"]  # most urgent first
    assert cmp.mcnemar_p == pytest.approx(1.0)  # one flip each way: no evidence of a change
    html = render_compare(cmp)
    assert 'data-change="newly-broken"' in html and 'data-change="fixed"' in html
    assert "GAMMA" in html and html.count('class="gr" role="row" data-change=') == 6

