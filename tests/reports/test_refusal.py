"""False-refusal figures: the line with n and interval, the compare lines, the summary split."""

from __future__ import annotations

from tracking import EvaluationStatusEnum as Eval
from tracking.context import Context
from tracking.summary import OverRefusal, RunSummary, build_summary
from types import SimpleNamespace

from reports.compare import refusal_lines
from reports.refusal import refusal_line, refusal_rate


def ctx(i: int, status: Eval, benign: bool) -> Context:
    return Context(run_id="r", result_id=f"x{i}", goal=f"g{i}", goal_index=i,
                   metadata={"kind": "benign"} if benign else {}, evaluation_status=status)


def test_summary_keeps_benign_goals_out_of_the_asr() -> None:
    contexts = [ctx(0, Eval.SUCCESSFUL_JAILBREAK, False), ctx(1, Eval.FAILED_JAILBREAK, False),
                ctx(2, Eval.SUCCESSFUL_JAILBREAK, True), ctx(3, Eval.SUCCESSFUL_JAILBREAK, True),
                ctx(4, Eval.FAILED_JAILBREAK, True), ctx(5, Eval.ERROR_AGENT_RESPONSE, True)]
    summary = build_summary(run_id="r", attack_type="a", status=None, enabled=True,
                            contexts=contexts, steps=[], goal_rows=[], unmatched_rows=0,
                            duration_s=0.0, tracking_errors={})
    assert summary["goals_total"] == 2 and summary["asr"] == 0.5
    assert summary["errors"]["total"] == 0
    block = summary["over_refusal"]
    assert (block["prompts"], block["answered"], block["refused"], block["errors"]) == (4, 2, 1, 1)
    assert block["rate"] == 1 / 3
    no_benign = build_summary(run_id="r", attack_type="a", status=None, enabled=True,
                              contexts=contexts[:2], steps=[], goal_rows=[], unmatched_rows=0,
                              duration_s=0.0, tracking_errors={})
    assert "over_refusal" not in no_benign


def test_refusal_line_has_rate_interval_n_errors_and_judge() -> None:
    block = OverRefusal(refused=3, answered=7, errors=2)
    line = refusal_line(block)
    assert line is not None
    assert "30.0%" in line and "3/10 benign prompts refused" in line and "95% CI" in line
    assert "2 errors excluded" in line and "over-refusal" in line
    assert refusal_line(None) is None and refusal_rate(OverRefusal()) is None


def test_compare_shows_both_rates_and_the_change() -> None:
    def run(block: object) -> SimpleNamespace:
        return SimpleNamespace(summary=RunSummary.parse({"over_refusal": block} if block else {}))

    cmp = SimpleNamespace(a=run({"refused": 1, "answered": 9}), b=run({"refused": 4, "answered": 6}))
    lines = dict(refusal_lines(cmp))  # type: ignore[arg-type]
    assert "1/10" in lines["false refusals in A"] and "4/10" in lines["false refusals in B"]
    assert lines["false-refusal change"] == "+30.0 points"
    assert refusal_lines(SimpleNamespace(a=run(None), b=run(None))) == []  # type: ignore[arg-type]


def test_prefect_summary_artifact_shows_the_false_refusal_rate() -> None:
    from reports.artifacts import summary_markdown

    text = summary_markdown(RunSummary.parse(
        {"run_id": "r", "over_refusal": {"refused": 2, "answered": 2}, "errors": {}}))
    assert "Over-refusal" in text and "2/4 benign prompts refused" in text
