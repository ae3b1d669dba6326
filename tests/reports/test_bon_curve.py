"""The Best-of-N curve: ASR@k from rows (empirical), cost at k, and its renderings."""

from __future__ import annotations


import pytest

from reports.bon import bon_curve, curve_summary, summary_line
from reports.bon_html import step_chart
from tracking import PipelineRow


def row(goal: str, k: int, *, ok: bool | None, cost: float = 0.01, error: str | None = None,
        technique: str = "bon") -> PipelineRow:
    return PipelineRow(result_id=goal, technique=technique, meta={"sample": k}, error=error,
                       success=ok, score=None if ok is None else float(ok), cost_usd=cost)


def test_curve_counts_goals_broken_within_their_first_k_samples() -> None:
    rows = [
        # g1 broken at index 0; g2 at index 4 (an in-flight index 6 also succeeded: ignored);
        # g3 held over 10 samples; g4 only target errors: excluded, counted apart.
        row("g1", 0, ok=True),
        *[row("g2", k, ok=k in (4, 6)) for k in range(7)],
        *[row("g3", k, ok=False) for k in range(10)],
        *[row("g4", k, ok=None, error="503") for k in range(3)],
        row("g5", 0, ok=True, technique="baseline"),  # not a sample: ignored
    ]
    curve = bon_curve(rows, 0.5, n=10)
    assert curve.goals == 3 and curve.error_goals == 1
    assert curve.samples == 21 and curve.sample_errors == 3
    assert [(p.k, p.broken) for p in curve.points] == [(1, 1), (5, 2), (10, 2)]
    assert curve.asr_at(1) == pytest.approx(1 / 3)
    assert curve.asr_at(4) == pytest.approx(1 / 3)
    assert curve.asr_at(5) == pytest.approx(2 / 3)
    assert curve.asr_at(10_000) == pytest.approx(2 / 3)
    # Cost at k: samples with index < k, every goal. k=5: g1 1 + g2 5 + g3 5 + g4 3 samples.
    assert curve.points[1].cost_usd == pytest.approx(0.14)
    block = curve_summary(curve)
    assert block.asr_at == [(1, pytest.approx(1 / 3)), (10, pytest.approx(2 / 3))]
    assert block.broken == 2 and block.n == 10
    stored = block.model_dump(mode="json")  # the run summary's JSON keeps [k, ASR@k] lists
    assert stored["asr_at"] == [[1, pytest.approx(1 / 3)], [10, pytest.approx(2 / 3)]]
    line = summary_line(block)
    assert "ASR@10 66.7%" in line and "2/3 judged goals" in line and "95% CI" in line
    assert "3 target errors" in line


def test_no_samples_no_curve() -> None:
    curve = bon_curve([row("g", 0, ok=True, technique="templates")], 0.5)
    assert curve.goals == 0 and curve.asr_at(1) is None


def test_step_chart_escapes_and_draws_one_dot_per_step() -> None:
    svg = step_chart("<b>t</b>", [1, 5, 100], [0.1, 0.5, 0.9], x_label="k <log>", log=True,
                     fmt=lambda v: f"{v:g}")
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "k &lt;log&gt;" in svg
    assert svg.count("<circle") == 3 and "style=" not in svg
