"""The `template` judge inside a real run: a text-completion classifier judges every answer over
/v1/completions, and a template with a `{context}` slot gets a contextual goal's context apart
from its behaviour (a template without one reads the goal with its context, as other judges)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flows.attack import attack_flow
from flows.config import AttackSpec, GoalsSpec, JudgePanelSpec
from goals import load_preset
from tests.flows.test_attack_flow import only_run, target_for
from tests.support.default_responder import default_responder
from tests.support.openai_server import OpenAIServer
from tracking import get_backend

pytestmark = pytest.mark.e2e

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_text_mode_template_judges_a_contextual_run(prefect_api_url: str, sqlite_url: str) -> None:
    seen: list[dict[str, Any]] = []

    def responder(request: dict[str, Any]) -> Any:
        seen.append(request)
        return default_responder(request)

    (goal,) = load_preset("harmbench:contextual", search=SHARED_DATA)[:1]
    with OpenAIServer(responder=responder) as server:
        model = {"model": "openai/cls", "api_base": server.base_url, "temperature": 0.0,
                 "max_retries": 2, "backoff_initial_s": 0.01}
        judges = JudgePanelSpec(rule="any", judges=[
            {"name": "template", "label": "cls-ctx", "mode": "text", "model": model,
             "template": "builtin:harmbench-classifier-contextual"},
            {"name": "template", "label": "cls", "mode": "text", "model": model,
             "template": "builtin:harmbench-classifier"},
        ])
        state = asyncio.run(attack_flow(
            target=target_for(server), attack=AttackSpec(name="baseline"), judges=judges,
            goals=GoalsSpec(source="harmbench:contextual", path=str(SHARED_DATA), limit=1),
            concurrency=2, db_url=sqlite_url, return_state=True))
    assert state.is_completed(), state.message
    run = only_run(sqlite_url)
    judgments = get_backend(sqlite_url).list_judgments(run_id=run.id)
    assert sorted(j.judge for j in judgments) == ["cls", "cls-ctx"]
    assert all(j.error is None and j.success is not None for j in judgments)
    to_judge = {("[CONTEXT]:" in r["prompt"]): r["prompt"] for r in seen if "prompt" in r}
    assert len(to_judge) == 2 and not any("messages" in r for r in seen if r["model"] == "cls")
    context, behaviour = goal.context.strip(), goal.text.strip()
    with_slot = to_judge[True]
    assert f"[CONTEXT]:\n{context}\n\n[BEHAVIOR]:\n{behaviour}\n\n[GENERATION]:" in with_slot
    assert with_slot.count(context) == 1
    without_slot = to_judge[False]
    assert context in without_slot.split("[BEHAVIOR]:")[1]  # the goal as the target saw it
