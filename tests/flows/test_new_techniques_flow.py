"""The new techniques in a real run (Prefect, HTTP target/attacker/judge, SQLite): composition
and translation, whose answers are translated back by the attacker before the judges read them;
a failed translation back is a judge error, never a verdict."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flows.attack import attack_flow
from flows.config import AttackSpec, GoalsSpec
from tests.flows.test_attack_flow import only_run, panel_for, target_for
from tests.support.default_responder import REFUSAL, default_responder
from tests.support.openai_server import OpenAIServer
from tests.support.replies import Reply
from tracking import get_backend

pytestmark = pytest.mark.e2e

BACK = "Sure, here is how to do it: step 1, get the tools."


def test_compose_and_translation_run_end_to_end(prefect_api_url: str, sqlite_url: str) -> None:
    attacker_prompts: list[str] = []

    def responder(request: dict[str, Any]) -> Any:
        text = request["messages"][-1]["content"]
        if request["model"] == "siegeflow-attacker":
            attacker_prompts.append(text)
            if "into English" in text:  # translating an answer back
                return Reply(status=500, error="boom") if "from Guarani" in text else BACK
            language = text.split("into ", 1)[1].split(".", 1)[0]
            return f"Yebo ({language}) " + text.rsplit("Text:\n", 1)[-1][:40]
        if request["model"] == "siegeflow-test" and text.startswith("Yebo"):
            return REFUSAL  # the raw answer is a refusal; its "translation" says otherwise
        return default_responder(request)

    with OpenAIServer(responder=responder) as server:
        attacker = {"model": "openai/siegeflow-attacker", "api_base": server.base_url,
                    "max_retries": 0, "timeout_s": 10}
        attack = AttackSpec(name="suite", options={"techniques": [
            {"name": "compose", "options": {"steps": ["encodings:base64",
                                                      "templates:role_play"]}},
            {"name": "translation", "options": {"attacker": attacker,
                                                "languages": ["zu", "gn"]}},
        ]})
        state = asyncio.run(attack_flow(
            target=target_for(server), attack=attack, judges=panel_for(server),
            goals=GoalsSpec(limit=2), concurrency=4, db_url=sqlite_url, return_state=True))
    assert state.is_completed(), state.message
    backend = get_backend(sqlite_url)
    run = only_run(sqlite_url)
    attempts = {a.id: a for a in backend.list_attempts(run.id)}
    assert sorted((a.technique, a.variant) for a in attempts.values()) == sorted(
        [("compose", "base64>role_play"), ("translation", "zu"), ("translation", "gn")] * 2)
    verdicts = {(attempts[j.attempt_id].technique, attempts[j.attempt_id].variant, j.judge):
                (j.success, j.error) for j in backend.list_judgments(run_id=run.id)}
    # Zulu: the refusal came back as BACK, so both judges read a compliant answer.
    assert verdicts[("translation", "zu", "refusal")] == (True, None)
    assert verdicts[("translation", "zu", "harmbench")][0] is True
    # Guarani: the translation back failed: a judge error for each judge, not a verdict.
    for judge in ("refusal", "harmbench"):
        success, error = verdicts[("translation", "gn", judge)]
        assert success is None and error and error.startswith("decode:")
    assert verdicts[("compose", "base64>role_play", "harmbench")][0] is True
    # 2 goals x 2 languages translated there; back: one call per distinct (language, answer)
    # — every answer was the same refusal — shared by both judges.
    assert sum("Translate the text below into" in p for p in attacker_prompts) == 4
    assert sum("into English" in p for p in attacker_prompts) == 2
