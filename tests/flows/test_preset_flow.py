"""A HarmBench contextual preset end to end: the context travels with each goal into the prompt
the target receives and into the prompt every model judge reads (real Prefect, real HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flows.attack import attack_flow
from flows.config import AttackSpec, GoalsSpec
from goals import load_preset
from tests.flows.test_attack_flow import only_run, panel_for, target_for
from tests.support.default_responder import default_responder
from tests.support.openai_server import OpenAIServer
from tracking import get_backend

pytestmark = pytest.mark.e2e

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_contextual_preset_sends_context_to_target_and_judges(
    prefect_api_url: str, sqlite_url: str
) -> None:
    seen: list[dict[str, Any]] = []

    def responder(request: dict[str, Any]) -> Any:
        seen.append(request)
        return default_responder(request)

    goals = GoalsSpec(source="harmbench:contextual", path=str(SHARED_DATA), limit=2)
    expected = load_preset("harmbench:contextual", search=SHARED_DATA)[:2]
    with OpenAIServer(responder=responder) as server:
        state = asyncio.run(attack_flow(
            target=target_for(server), attack=AttackSpec(name="baseline"),
            judges=panel_for(server), goals=goals, concurrency=4, db_url=sqlite_url,
            return_state=True))
    assert state.is_completed(), state.message
    backend = get_backend(sqlite_url)
    run = only_run(sqlite_url)
    results = sorted(backend.list_results(run.id), key=lambda r: r.goal_index)
    assert [r.goal_id for r in results] == [g.id for g in expected]
    assert [(r.goal_metadata or {}).get("context") for r in results] == [
        g.context for g in expected]
    prompts = {a.result_id: a.prompt[-1]["content"] for a in backend.list_attempts(run.id)}
    for result, goal in zip(results, expected, strict=True):
        assert prompts[result.id] == goal.request and goal.context in prompts[result.id]
    to_target = [r for r in seen if r["model"] == "siegeflow-test"]
    to_judge = [r for r in seen if r["model"] == "siegeflow-judge"]
    assert len(to_target) == 2 and len(to_judge) == 2
    for goal in expected:
        snippet = goal.context.splitlines()[0][:60]
        assert any(snippet in m["content"] for r in to_target for m in r["messages"])
        assert any(snippet in m["content"] for r in to_judge for m in r["messages"])
