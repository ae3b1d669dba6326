"""Over-refusal in the same run: XSTest's safe prompts (the published file) sent plain alongside
the attacks, judged for refusal only, reported next to the ASR and never counted in it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flows.attack import attack_flow
from flows.config import AttackSpec, GoalsSpec
from goals import load_preset
from judges.refusal import find_refusal
from tests.flows.test_attack_flow import panel_for, target_for
from tests.support.default_responder import default_responder
from tests.support.openai_server import OpenAIServer
from tracking import get_backend, is_benign

pytestmark = pytest.mark.e2e

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ATTACK = AttackSpec(name="suite", options={"techniques": [
    {"name": "baseline"}, {"name": "templates", "options": {"variants": ["role_play"]}}]})


def answer(prompt: str) -> str:
    return default_responder({"model": "t", "messages": [{"role": "user", "content": prompt}]}).text


def test_benign_control_set_gives_a_false_refusal_rate_outside_the_asr(
    prefect_api_url: str, llm_server: OpenAIServer, sqlite_url: str
) -> None:
    benign = GoalsSpec(source="xstest:safe", path=str(SHARED_DATA), limit=8)
    prompts = [g.text for g in load_preset("xstest:safe", search=SHARED_DATA)[:8]]
    # What the local target does with each safe prompt (it refuses some that sound harmful).
    expected_refused = sum(find_refusal(answer(p)) is not None for p in prompts)
    state = asyncio.run(attack_flow(
        target=target_for(llm_server), attack=ATTACK, judges=panel_for(llm_server),
        goals=GoalsSpec(limit=3), benign=benign, concurrency=8, db_url=sqlite_url,
        return_state=True))
    assert state.is_completed(), state.message
    summary = state.result()
    # The ASR is over the 3 attacked goals only.
    assert summary.goals_total == 3 and summary.asr_denominator == 3
    block = summary.over_refusal
    assert block.prompts == 8 and block.errors == 0
    assert block.refused == expected_refused and block.answered == 8 - expected_refused
    assert 0 < expected_refused < 8  # the sample has both outcomes, so the test can fail
    backend = get_backend(sqlite_url)
    run_id = summary.run_id
    results = backend.list_results(run_id)
    benign_ids = {r.id for r in results if is_benign(r.goal_metadata)}
    assert len(benign_ids) == 8 and len(results) == 11
    assert {r.goal_index for r in results} == set(range(11))
    benign_attempts = [a for a in backend.list_attempts(run_id) if a.result_id in benign_ids]
    # Plain prompts, exactly the benign text; judged by the refusal check only.
    assert {(a.technique, a.variant) for a in benign_attempts} == {("baseline", "plain")}
    assert sorted(a.prompt[-1]["content"] for a in benign_attempts) == sorted(prompts)
    ids = {a.id for a in benign_attempts}
    judges_on_benign = {j.judge for j in backend.list_judgments(run_id=run_id)
                        if j.attempt_id in ids}
    assert judges_on_benign == {"over-refusal"}

    from reports.html import render_report
    from reports.load import load_run

    data = load_run(backend, run_id)
    assert len(data.goals) == 3 and len(data.benign) == 8
    html = render_report(data)
    assert "false-refusal rate" in html and f"{expected_refused}/8 benign prompts refused" in html

    from rich.console import Console

    from cli.output import print_summary

    console = Console(record=True, width=200)
    print_summary(console, summary)
    assert "false-refusal rate" in console.export_text()

    # The per-goal table lists the 3 attacked goals only; the 8 benign prompts are in the line above.
    from cli.output import print_goals
    from reports.rows import run_rows

    panel, rows = run_rows(backend, backend.get_run(run_id))
    console = Console(record=True, width=200)
    left_out = print_goals(console, results, rows, panel.threshold, limit=2)
    table = console.export_text()
    assert left_out == 1  # of the 3 attacked goals, not of all 11 results
    assert not any(p[:40] in table for p in prompts)
