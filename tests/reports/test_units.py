"""Statistics, text cleaning and trajectory rendering, without servers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from reports.compare import mcnemar_exact
from reports.figures import wilson
from reports.html import cell_limit, render_report
from reports.load import load_run
from reports.text import clip, xml_text
from reports.trajectory import event_kind, render_trajectory, run_number
from tests.reports.synthetic import record_synthetic_run
from tracking import get_backend


@pytest.mark.parametrize(("k", "n", "lo", "hi"), [
    (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (2, 5, 0.1176, 0.7693), (50, 100, 0.4038, 0.5962),
])
def test_wilson_matches_published_values(k: int, n: int, lo: float, hi: float) -> None:
    interval = wilson(k, n)
    assert interval is not None
    assert interval[0] == pytest.approx(lo, abs=1e-4) and interval[1] == pytest.approx(hi, abs=1e-4)


def test_wilson_of_nothing_is_none() -> None:
    assert wilson(0, 0) is None


def test_mcnemar_exact() -> None:
    assert mcnemar_exact(0, 0) is None
    assert mcnemar_exact(1, 1) == pytest.approx(1.0)
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)  # all flips one way: significant
    assert mcnemar_exact(6, 2) == pytest.approx(0.2890625)


def test_text_helpers() -> None:
    assert xml_text("a\x00b\ufffec\u202ed") == "ab\ufffdcd"
    assert clip("abcdef", 4) == ("abcd", 2) and clip(None, 3) == ("", 0)
    assert cell_limit(10) == 4000 and cell_limit(5000) < 600 and cell_limit(5000, 123) == 123


def _trace(seq: int, name: str, kind: str, content: object) -> SimpleNamespace:
    return SimpleNamespace(sequence=seq, step_name=name, step_type=kind, content=content)


def test_trajectory_groups_runs_marks_event_kinds_and_escapes() -> None:
    traces = [
        _trace(0, "run-0", "injection", {"where": "tool:search", "injected": "<b>x</b>"}),
        _trace(1, "run-0", "target_response", {"response": "ok"}),
        _trace(2, "run-0", "run_end", {"score": 0.25, "success": False}),
        _trace(3, "step", "observe", {"run_index": 1, "value": [1, 2]}),
        _trace(4, "step", "run_end", {"score": 0.9, "success": True}),
    ]
    html = render_trajectory(traces, limit=100, max_events=10)
    assert "<h3>Run 0 · score 0.25 · no success</h3>" in html
    assert "<h3>Run 1 · score 0.90 · success</h3>" in html  # untagged event joins its run
    assert '<li class="inject">' in html and '<li class="judge">' in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert run_number("attempt run-7", None) == 7 and run_number("x", {"run": 3}) == 3
    assert event_kind("EVALUATION", "Evaluation", {"notes": ""}) == "judge"
    many = render_trajectory([_trace(i, "run-0", "e", "x" * 50) for i in range(20)],
                             limit=10, max_events=5)
    assert "15 later events not shown" in many and "40 more characters" in many


def test_optimizer_run_report_shows_collapsed_trajectories(tmp_path: Path) -> None:
    """An optimizer run written through the store: one <details> per goal, closed."""
    backend = get_backend(f"sqlite:///{tmp_path / 'opt.db'}")
    run_id = record_synthetic_run(backend, 12, optimizer_runs=3)
    data = load_run(backend, run_id)
    assert data.kind == "optimize" and len(data.traces) == 12
    html = render_report(data)
    assert html.count('<details class="traj" id="traj-') == 12
    assert "<details class=\"traj\" id=\"traj-0\" open" not in html
    assert html.count('<a href="#traj-') == 12 and "3 run(s), 12 events" in html


def test_tool_calls_show_outputs_and_errors_escaped() -> None:
    """An agent's tool calls in the report: each with what the tool returned or raised; the
    tool's output is the attacker's text (an injection), so it is escaped and clipped."""
    from reports.html import tool_calls_html
    from tracking.rows import PipelineRow

    row = PipelineRow(meta={"tool_calls": [
        {"name": "read_inbox", "arguments": "{}", "output": "<script>alert(1)</script>" + "x" * 5000},
        {"name": "transfer_money", "arguments": '{"to": "<b>"}', "output": "Error: no funds",
         "error": "ValueError: no <funds>"},
        {"name": "plain", "arguments": "{}"},
    ]})
    html = tool_calls_html(row, 400)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "x" * 500 not in html
    assert "transfer_money({&quot;to&quot;: &quot;&lt;b&gt;&quot;})" in html
    assert '<span class="err">error: ValueError: no &lt;funds&gt;</span> → Error: no funds' in html
    assert "<div>plain({})</div>" in html
