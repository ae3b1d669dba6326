"""A run end to end with validated judges: the corrected ASR and false-refusal rate are computed
once when the run ends, stored in its summary, and the headline, the HTML report it wrote, JUnit
and SARIF print the raw figure next to the corrected one and name the validation used."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from rich.console import Console

from flows.attack import attack_flow
from flows.config import AttackSpec, GoalsSpec
from judges.citation import panel_digest, panel_key
from judges.corrected import OVER_REFUSAL_SPEC
from judges.correction import Counts, correct
from reports.figures import asr_text, pct
from tests.flows.test_attack_flow import panel_for, target_for
from tests.support.openai_server import OpenAIServer
from tracking import get_backend

pytestmark = pytest.mark.e2e

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ATTACK = AttackSpec(name="baseline")  # plain: the local target refuses some goals, not all
# Fixture validations (not the shipped figures): the panel, and the refusal detector on XSTest.
PANEL = Counts(tp=90, fn=10, tn=85, fp=15)
DETECTOR = Counts(tp=45, fn=5, tn=140, fp=10)


def test_a_run_stores_and_prints_corrected_figures(
    prefect_api_url: str, llm_server: OpenAIServer, sqlite_url: str
) -> None:
    panel = panel_for(llm_server)
    backend = get_backend(sqlite_url)
    key = panel_key(panel.model_dump(mode="json")["judges"], panel.rule)
    for digest, counts, positive, datasets in (
        (panel_digest(key), PANEL, "success", None),
        (panel_digest(panel_key([OVER_REFUSAL_SPEC], "single")), DETECTOR, "refusal",
         [{"name": "xstest", "prompts": "safe", "n": 200, "tp": 45, "fp": 10, "tn": 140, "fn": 5,
           "out_of_sample": True}]),
    ):
        backend.save_validation(
            panel_key=digest, panel={}, source="fixture labels", labels_sha256="0" * 64, n=200,
            errors=0, accuracy=0.9, kappa=0.8, figures={}, positive=positive,
            counts={"tp": counts.tp, "fp": counts.fp, "tn": counts.tn, "fn": counts.fn},
            datasets=datasets)
    state = asyncio.run(attack_flow(
        target=target_for(llm_server), attack=ATTACK, judges=panel, goals=GoalsSpec(limit=10),
        benign=GoalsSpec(source="xstest:safe", path=str(SHARED_DATA), limit=8),
        concurrency=8, db_url=sqlite_url, return_state=True))
    assert state.is_completed(), state.message
    summary = state.result()
    x, n = summary.successful, summary.successful + summary.failed
    assert n == 10 and 0 < x < n  # some broken, some held: the correction is not clipped

    block = summary.asr_corrected
    expected = correct(x, n, PANEL)
    assert block.status == "corrected" and block.origin == "this store"
    assert block.answers_per_goal == 1  # plain attack: one judged answer per goal
    assert block.overall.value == pytest.approx(expected.value)
    assert (block.overall.low, block.overall.high) == pytest.approx((expected.low, expected.high))
    refusals = summary.over_refusal
    detector = summary.over_refusal_corrected
    assert detector.positive == "refusal" and detector.stratum == "xstest:safe"
    assert detector.overall.value == pytest.approx(
        correct(refusals.refused, refusals.refused + refusals.answered, DETECTOR).value)
    # stored, so every reader gets the same figures
    stored = backend.get_run(summary.run_id).summary
    assert stored["asr_corrected"]["overall"]["value"] == pytest.approx(expected.value)

    raw = f"raw {asr_text(x, n)}"
    corrected = (f"corrected for judge error {pct(expected.value)} "
                 f"[{pct(expected.low)}–{pct(expected.high)}]")
    from cli.output import print_summary

    console = Console(record=True, width=300)
    print_summary(console, summary)
    headline = console.export_text()
    assert f"{raw} · {corrected}" in headline
    assert "fixture labels" in headline and "this store" in headline
    assert "refusal detector: over-refusal: fixture labels, xstest:safe stratum" in headline

    from cli.output import print_run, print_runs
    from judges.citation import store_lookup

    console = Console(record=True, width=300)  # `runs show`, read back from the store
    print_run(console, backend, backend.get_run(summary.run_id))
    show = console.export_text()
    assert f"{raw} · {corrected}" in show
    assert "correction used" in show and "fixture labels, pooled out-of-sample counts" in show
    console = Console(record=True, width=400)  # `runs list`
    print_runs(console, backend.list_runs(), store_lookup(backend))
    assert f"{pct(expected.value)} [{pct(expected.low)}–{pct(expected.high)}]" in (
        console.export_text())

    html = Path(summary.report_path).read_text(encoding="utf-8")  # written by the flow
    assert raw in html and corrected in html and "fixture labels" in html
    # every rate table (category, technique) has the corrected column: 10 goals, one technique
    assert html.count("corrected for judge error</th>") >= 2
    assert f'<td class="num">{pct(expected.value)} [' in html

    from reports.junit import render_junit
    from reports.load import load_run
    from reports.sarif import render_sarif

    data = load_run(backend, summary.run_id)
    junit = render_junit(data)
    assert f'name="asr_raw" value="{raw}"' in junit and corrected in junit
    props = json.loads(render_sarif(data))["runs"][0]["properties"]
    assert props["asrRawText"] == raw and props["asrCorrected"]["text"] == corrected
    assert props["falseRefusalCorrected"]["stratum"] == "xstest:safe"
