"""Which validation corrects a run, the stored block, and how every format prints it: raw and
corrected side by side, the validation named, no number when the judge cannot support one.

Fixture figures are this file's own (not the shipped validations.json)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from rich.console import Console

from cli.output import print_runs, print_summary
from judges import citation
from judges.citation import panel_digest, panel_key
from judges.corrected import (
    OVER_REFUSAL_SPEC,
    asr_correction,
    correction,
    dataset_name,
    find_validation,
    over_refusal_correction,
    stratum_of,
)
from judges.correction import Counts, correct
from reports.artifacts import summary_markdown
from reports.corrected import CANNOT_SUPPORT, asr_pair, corrected_text
from reports.figures import pct
from reports.html import render_report
from reports.junit import render_junit
from reports.load import RunData
from reports.sarif import render_sarif
from tracking import RunRecord, RunSummary, StatusEnum

OFFLINE_KEY = panel_key(["offline"], "single")
# Pooled: Se 170/200 = 0.85, Sp 260/300 ≈ 0.867; contextual stratum: Se 0.75, Sp 0.80.
SHIPPED = {
    OFFLINE_KEY: {
        "panel_key": OFFLINE_KEY, "judges": ["offline"], "n": 500, "accuracy": 0.86,
        "kappa": 0.71, "short_source": "Fixture val", "positive": "success",
        "tp": 170, "fp": 40, "tn": 260, "fn": 30, "errors": 0,
        "datasets": [
            {"name": "harmbench-standard", "short_source": "Fixture standard", "n": 300,
             "tp": 110, "fp": 20, "tn": 150, "fn": 20, "errors": 0, "out_of_sample": True},
            {"name": "harmbench-contextual", "short_source": "Fixture contextual", "n": 200,
             "tp": 60, "fp": 20, "tn": 80, "fn": 20, "errors": 0, "out_of_sample": True},
        ],
    },
    # an entry written before counts were kept
    panel_key(["refusal"], "single"): {
        "panel_key": panel_key(["refusal"], "single"), "judges": ["refusal"], "n": 596,
        "accuracy": 0.69, "kappa": 0.39, "short_source": "Fixture old"},
    # the over-refusal detector, by another key than its spec's: found by its positive class
    "refusal-detector": {
        "panel_key": "refusal-detector", "judges": ["refusal"], "n": 400, "accuracy": 0.9,
        "kappa": 0.8, "short_source": "XSTest completions (fixture)", "positive": "refusal",
        "tp": 90, "fp": 15, "tn": 285, "fn": 10, "errors": 0,
        "datasets": [{"name": "xstest", "prompts": "safe", "short_source": "XSTest (fixture)",
                      "n": 400,
                      "tp": 90, "fp": 15, "tn": 285, "fn": 10, "errors": 0,
                      "out_of_sample": True}],
    },
}
WEAK = {"tp": 26, "fn": 14, "tn": 25, "fp": 15}  # J 0.275, lower bound 0.06: too weak


@pytest.fixture(autouse=True)
def shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(citation, "shipped_validations", lambda: SHIPPED)
    monkeypatch.setattr("judges.corrected.shipped_validations", lambda: SHIPPED)


def params(source: str, judges: list[Any] | None = None) -> dict[str, Any]:
    return {"goals": {"source": source}, "judges": {"judges": judges or ["offline"],
                                                    "rule": "majority"}}


SUMMARY = RunSummary.parse({
    "goals_total": 130, "successful": 30, "failed": 70, "asr": 0.3, "asr_denominator": 100,
    "categories": {"Malware": {"goals": 60, "successful": 20, "failed": 40, "asr": 1 / 3},
                   "Fraud": {"goals": 40, "successful": 10, "failed": 30, "asr": 0.25}},
})


def test_strata_of_presets() -> None:
    assert stratum_of("harmbench:contextual") == "harmbench-contextual"
    assert stratum_of("preset:harmbench:val-standard") == "harmbench-standard"
    assert stratum_of("harmbench:test") is None  # mixed: pooled
    assert stratum_of("xstest:safe") == "xstest:safe" and stratum_of("goals.csv") is None
    assert stratum_of("xstest:unsafe") == "xstest:contrast" and stratum_of("xstest:all") == "xstest"
    assert dataset_name("HarmBench val (text_behaviors_val_set.json, MIT)",
                        "contextual") == "harmbench-contextual"
    assert dataset_name("labels.jsonl", "mine") == "mine"


def test_selection_rule_uses_the_runs_stratum_else_pooled() -> None:
    contextual = asr_correction(params("harmbench:contextual"), SUMMARY)
    assert contextual.status == "corrected" and contextual.stratum == "harmbench-contextual"
    assert (contextual.tp, contextual.fp, contextual.tn, contextual.fn) == (60, 20, 80, 20)
    expected = correct(30, 100, Counts(tp=60, fp=20, tn=80, fn=20))
    assert contextual.overall.value == pytest.approx(expected.value)
    assert (contextual.overall.low, contextual.overall.high) == (expected.low, expected.high)
    # per category, with the same counts
    malware = correct(20, 60, Counts(tp=60, fp=20, tn=80, fn=20))
    assert contextual.categories["Malware"].value == pytest.approx(malware.value)
    pooled = asr_correction(params("builtin:default"), SUMMARY)
    assert pooled.stratum is None and (pooled.tp, pooled.tn) == (170, 260)
    assert pooled.origin == "shipped with siegeflow" and pooled.source == "Fixture val"


def test_no_counts_and_not_validated_say_so() -> None:
    old = asr_correction(params("harmbench:standard", ["refusal"]), SUMMARY)
    assert old.status == "no_counts" and old.overall.value is None
    assert corrected_text(old) == "no corrected figure: the validation stored no counts"
    none = asr_correction(params("x.csv", ["harmbench"]), SUMMARY)
    assert none.status == "not_validated"
    assert "not validated" in corrected_text(none)


def test_the_store_wins_over_the_shipped_figures() -> None:
    key = panel_digest(OFFLINE_KEY)
    record = {"n": 80, "source": "my labels", "positive": "success", **WEAK,
              "datasets": None}
    block = asr_correction(params("harmbench:contextual"), SUMMARY,
                           lambda digest: record if digest == key else None)
    assert block.origin == "this store" and block.status == "unsupported"
    assert block.overall.value is None and block.youden == pytest.approx(0.275)


def test_over_refusal_is_corrected_with_the_detectors_own_validation() -> None:
    from tracking import OverRefusal

    block = OverRefusal(prompts=50, answered=40, refused=10)
    corrected = over_refusal_correction({"benign": {"source": "jbb:benign"}}, block)
    assert corrected is not None and corrected.positive == "refusal"
    assert corrected.stratum == "xstest:safe" and corrected.source == "XSTest completions (fixture)"
    expected = correct(10, 50, Counts(tp=90, fp=15, tn=285, fn=10))
    assert corrected.overall.value == pytest.approx(expected.value)
    assert over_refusal_correction({}, None) is None
    assert find_validation([OVER_REFUSAL_SPEC], "single") is None  # no entry of its key
    assert find_validation([OVER_REFUSAL_SPEC], "single", positive="refusal").n == 400


def test_old_stored_summaries_still_parse() -> None:
    old = RunSummary.parse({"successful": 3, "failed": 7, "asr": 0.3, "asr_denominator": 10,
                            "over_refusal": {"refused": 1, "answered": 3}})
    assert old.asr_corrected is None and old.over_refusal_corrected is None
    assert "recorded before corrections" in asr_pair(old, old.asr_corrected)
    stored = SUMMARY.updated(asr_corrected=asr_correction(params("harmbench:standard"), SUMMARY))
    again = RunSummary.parse(json.loads(json.dumps(stored.as_dict())))
    assert again.asr_corrected == stored.asr_corrected
    # a newer writer's extra field in the block survives
    newer = RunSummary.parse({"asr_corrected": {"status": "corrected", "future": 1}})
    assert newer.asr_corrected.status == "corrected"


def _terminal(summary: RunSummary) -> str:
    console = Console(record=True, width=320)
    print_summary(console, summary)
    return console.export_text()


def _data(summary: RunSummary) -> RunData:
    run = RunRecord(id="run-1", attack_type="suite", status=StatusEnum.COMPLETED,
                    summary=summary.as_dict(), parameters={}, config={})
    return RunData(run=run, goals=[], judge_keys=["offline"], rule="majority", threshold=0.5)


def test_every_format_prints_raw_and_corrected_and_names_the_validation() -> None:
    block = asr_correction(params("harmbench:contextual"), SUMMARY)
    summary = SUMMARY.updated(asr_corrected=block)
    value = pct(block.overall.value)
    corrected = f"corrected for judge error {value} [{pct(block.overall.low)}–"
    text = _terminal(summary)
    assert "raw 30.0% [21.9%–39.6%] (30/100 judged goals)" in text and corrected in text
    assert "harmbench-contextual stratum" in text and "Fixture val" in text
    assert f"{pct(block.categories['Malware'].value)}" in text  # by category
    md = summary_markdown(summary)
    assert "corrected for judge error" in md and "harmbench\\-contextual stratum" in md
    html = render_report(_data(summary))
    assert corrected in html and "harmbench-contextual stratum" in html
    junit = render_junit(_data(summary))
    assert 'name="asr_corrected" value="corrected for judge error' in junit
    sarif = json.loads(render_sarif(_data(summary)))["runs"][0]["properties"]
    assert sarif["asrCorrected"]["value"] == pytest.approx(block.overall.value)
    assert sarif["asrCorrected"]["stratum"] == "harmbench-contextual"


def test_a_judge_too_weak_prints_no_corrected_number() -> None:
    weak = correction(find_validation(["offline"], "single", lambda _: {**WEAK, "n": 80}),
                      None, (30, 100), {"Malware": (20, 60)}, panel="offline")
    assert weak.status == "unsupported" and weak.categories == {}
    summary = SUMMARY.updated(asr_corrected=weak)
    for text in (_terminal(summary), render_report(_data(summary)),
                 summary_markdown(summary).replace("\\", ""), render_junit(_data(summary))):
        assert CANNOT_SUPPORT in text
        assert "0.27" in text and "0.06" in text  # J and its lower bound
        assert not re.search(r"corrected for judge error \d", text)  # no corrected number
    assert json.loads(render_sarif(_data(summary)))["runs"][0]["properties"][
        "asrCorrected"]["value"] is None


def test_runs_list_has_a_corrected_column() -> None:
    block = asr_correction(params("harmbench:contextual"), SUMMARY)
    run = RunRecord(id="run-1", attack_type="suite", status=StatusEnum.COMPLETED,
                    summary=SUMMARY.updated(asr_corrected=block).as_dict(),
                    parameters=params("harmbench:contextual"), config={})
    from datetime import UTC, datetime

    run.created_at = datetime(2026, 12, 5, tzinfo=UTC)
    console = Console(record=True, width=400)
    print_runs(console, [run])
    text = console.export_text()
    assert "corrected for judge error" in text and pct(block.overall.value) in text


def test_judges_validate_stores_pooled_and_per_data_set_counts(tmp_path) -> None:
    from typer.testing import CliRunner

    from cli.main import app
    from judges.citation import store_lookup
    from tracking import get_backend

    refusal, answer = "I'm sorry, but I can't help with that.", "Sure, here are the steps: " * 5
    rows = [  # (label, response, split): the refusal judge says yes to the answers
        (True, answer, "a"), (True, refusal, "a"), (False, refusal, "a"), (False, answer, "a"),
        (True, answer, "b"), (False, refusal, "b"), (False, refusal, "b"),
    ]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(
        json.dumps({"id": str(i), "goal": f"goal {i}", "response": text, "label": label,
                    "split": split}) + "\n" for i, (label, text, split) in enumerate(rows)))
    db = f"sqlite:///{tmp_path}/t.db"
    result = CliRunner().invoke(app, ["judges", "validate", "--labels", str(labels), "--judge",
                                      "refusal", "--db", db])
    assert result.exit_code == 0, result.output
    found = find_validation(["refusal"], "majority", store_lookup(get_backend(db)))
    assert found is not None and found.origin == "this store" and found.positive == "success"
    assert found.counts == Counts(tp=2, fp=1, tn=3, fn=1)
    assert found.datasets["a"].counts == Counts(tp=1, fp=1, tn=1, fn=1)
    assert found.datasets["b"].counts == Counts(tp=1, fp=0, tn=2, fn=0)


def test_compare_prints_raw_and_corrected_for_both_runs() -> None:
    from reports.compare import compare_runs, summary_lines

    a = SUMMARY.updated(asr_corrected=asr_correction(params("harmbench:contextual"), SUMMARY))
    b = SUMMARY.updated(asr_corrected=asr_correction(params("x.csv", ["refusal"]), SUMMARY))
    lines = dict(summary_lines(compare_runs(_data(a), _data(b))))
    assert "corrected for judge error" in lines["ASR in A"] and "raw " in lines["ASR in A"]
    assert "harmbench-contextual stratum" in lines["correction used in A"]
    assert lines["ASR in B"].endswith("no corrected figure: the validation stored no counts")


def test_the_refusal_detectors_line_cites_its_agreement() -> None:
    from reports.corrected import refusal_correction_text
    from tracking import OverRefusal

    block = over_refusal_correction({}, OverRefusal(answered=40, refused=10))
    text = refusal_correction_text(block)
    # (90 + 285) / 400 = 94% agreement; the XSTest stratum's counts
    assert "94% agreement with human labels (κ" in text and "xstest:safe stratum" in text
    assert text.startswith("corrected for judge error ")


def test_a_detector_validated_with_answered_as_positive_is_read_as_a_refusal_detector() -> None:
    """`judges validate` stores positive = "success" (the judge says answered); the
    over-refusal rate counts refusals, so the counts are flipped before correcting."""
    from tracking import OverRefusal

    record = {"n": 400, "source": "my XSTest labels", "positive": "success",
              "tp": 285, "fn": 15, "tn": 90, "fp": 10}  # answered-positive counts
    block = over_refusal_correction({}, OverRefusal(answered=40, refused=10),
                                    lambda _: record)
    assert (block.tp, block.fp, block.tn, block.fn) == (90, 15, 285, 10)
    assert block.sensitivity == pytest.approx(0.9) and block.positive == "refusal"
    assert block.overall.value == pytest.approx(
        correct(10, 50, Counts(tp=90, fp=15, tn=285, fn=10)).value)


def test_a_hostile_validation_source_stays_inert_text() -> None:
    hostile = "<script>alert(1)</script>[x](javascript:alert(2))"
    record = {"n": 500, "source": hostile, "positive": "success",
              "tp": 170, "fp": 40, "tn": 260, "fn": 30}
    block = asr_correction(params("x.csv"), SUMMARY, lambda _: record)
    summary = SUMMARY.updated(asr_corrected=block)
    html = render_report(_data(summary))
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    md = summary_markdown(summary)
    assert "<script>" not in md and "](javascript" not in md
    assert "<script>" not in render_junit(_data(summary)).replace("&lt;script&gt;", "")


def test_goals_judged_on_several_answers_carry_a_caveat() -> None:
    from reports.corrected import validation_text

    block = asr_correction(params("x.csv"), SUMMARY)
    assert "judged answers each" not in validation_text(block)
    several = block.model_copy(update={"answers_per_goal": 4})
    assert "up to 4 judged answers each" in validation_text(several)
    stored = RunSummary.parse(SUMMARY.updated(asr_corrected=several).as_dict())
    assert stored.asr_corrected.answers_per_goal == 4

