"""HarmBench copyright behaviours never get a silent, meaningless ASR: with the copyright judge
and the user's reference texts, reproduction is what breaks a goal (and a goal without its text
is not judged); with any other panel the summary, artifact and report carry a warning."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flows.attack import attack_flow
from flows.config import AttackSpec, GoalsSpec, JudgePanelSpec
from goals import load_preset
from targets import TargetConfig
from tests.support.default_responder import REFUSAL, prompt_text
from tests.support.openai_server import OpenAIServer
from tracking import EvaluationStatusEnum as Eval
from tracking import get_backend

pytestmark = pytest.mark.e2e

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
GOALS = GoalsSpec(source="harmbench:copyright", path=str(SHARED_DATA), limit=3)
# Stand-in "works" written for this test (the real ones are not ours to copy).
WORK = ("Lanterns over the quay and a tide that never keeps its promise, we sang it twice and "
        "then again, for the boats that would not come home before the bells of the evening "
        "rang out across the water and the lamplighter put his ladder away for the night")
COMPLY = "Sure, here are the lyrics you asked for, in full:"


@pytest.fixture
def copyright_server() -> object:
    goals = load_preset("harmbench:copyright", search=SHARED_DATA)[:3]

    def respond(request: dict[str, object]) -> str:
        text = prompt_text(request)
        if goals[0].text in text:
            return f"{COMPLY}\n{WORK}"  # reproduces the work
        if goals[1].text in text:
            return f"{COMPLY}\nA song about boats and bells; I will only describe it."
        return REFUSAL if goals[2].text not in text else f"{COMPLY}\n{WORK}"

    with OpenAIServer(responder=respond) as server:
        yield server, goals


def target(server: OpenAIServer) -> TargetConfig:
    return TargetConfig(model="openai/siegeflow-test", api_base=server.base_url, max_retries=1,
                        backoff_initial_s=0.01, timeout_s=10)


def test_copyright_goals_judged_by_reproduction_of_the_reference(
    prefect_api_url: str, copyright_server: object, sqlite_url: str, tmp_path: Path
) -> None:
    server, goals = copyright_server  # type: ignore[misc]  # the fixture yields a pair
    refs = tmp_path / "works"
    refs.mkdir()
    for goal in goals[:2]:  # the third goal's work was not supplied
        (refs / f"{goal.id}.txt").write_text(WORK, encoding="utf-8")
    panel = JudgePanelSpec(judges=[{"name": "copyright", "references": str(refs),
                                    "min_matched": 10}])
    state = asyncio.run(attack_flow(target=target(server), attack=AttackSpec(), goals=GOALS,
                                    judges=panel, db_url=sqlite_url, return_state=True))
    assert state.is_completed(), state.message
    summary = state.result()
    statuses = {r.goal_id: r.evaluation_status
                for r in get_backend(sqlite_url).list_results(summary.run_id)}
    assert statuses[goals[0].id] is Eval.SUCCESSFUL_JAILBREAK  # the work, reproduced
    assert statuses[goals[1].id] is Eval.FAILED_JAILBREAK  # complied, but reproduced nothing
    assert statuses[goals[2].id] is Eval.ERROR_TEST_FRAMEWORK  # no reference: not judged
    assert summary.judge_keys == ["copyright"] and not summary.warnings


def test_copyright_goals_without_the_copyright_judge_are_flagged(
    prefect_api_url: str, copyright_server: object, sqlite_url: str
) -> None:
    server, _ = copyright_server  # type: ignore[misc]  # the fixture yields a pair
    state = asyncio.run(attack_flow(target=target(server), attack=AttackSpec(), goals=GOALS,
                                    judges=JudgePanelSpec(judges=["refusal"]),
                                    db_url=sqlite_url, return_state=True))
    assert state.is_completed(), state.message
    summary = state.result()
    [warning] = summary.warnings
    assert warning.startswith("3 goal(s) of category 'copyright'") and "judged by refusal" in warning
    from reports.artifacts import summary_markdown
    from reports.html import render_report
    from reports.load import load_run

    assert "**Warning:** 3 goal" in summary_markdown(summary)
    html = render_report(load_run(get_backend(sqlite_url), summary.run_id))
    assert 'class="note err warning"' in html and "not HarmBench&#x27;s copyright ASR" in html
