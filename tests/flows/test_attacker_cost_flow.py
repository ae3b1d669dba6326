"""What techniques pay attacker models is part of the run's cost and of its budget.

A fake attacker model behind the local OpenAI-compatible server (it returns token usage, priced
by the attacker config) reformulates goals into the past tense, translates them into Zulu and
translates the target's Zulu answers back for the judges. The run's summary must show that spend
as attacker cost — exactly what the server's usage and the configured prices make it — inside
the total, and a budget smaller than one goal's reformulations must stop the run before the
target is asked anything.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from flows.attack import attack_flow
from flows.config import AttackSpec, GoalsSpec, JudgePanelSpec
from targets import TargetConfig
from tests.support.default_responder import REFUSAL, prompt_text
from tests.support.openai_server import OpenAIServer, _usage_tokens
from tracking import get_backend

pytestmark = pytest.mark.e2e

IN_PRICE, OUT_PRICE = 2e-4, 5e-4  # the attacker's USD per token
TARGET_PRICE = 1e-4
ZULU = "Ngicela ungitshele"
ZULU_ANSWER = "Yebo, nansi indlela: isinyathelo sokuqala, isinyathelo sesibili."
ENGLISH_ANSWER = "Sure, here is how: step one, then step two."


class Models:
    """The attacker and the target on one server, told apart by model name; every attacker call
    is logged with what the server bills for it (prompt and completion tokens)."""

    def __init__(self) -> None:
        self.attacker: list[tuple[str, int, int]] = []  # (kind, prompt tokens, reply tokens)
        self.target: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> str:
        text = prompt_text(request)
        if "attacker" not in str(request.get("model")):
            with self._lock:
                self.target.append(text)
            # One distinct answer per goal (the translation back is memoised by answer text).
            return f"{ZULU_ANSWER} ({text.split()[-1]})" if text.startswith(ZULU) else REFUSAL
        if "into English" in text:
            kind, reply = "back", ENGLISH_ANSWER
        elif text.startswith("Translate the text below into"):
            kind, reply = "to-zulu", f"{ZULU} {len(self.attacker)}"
        else:  # past tense: the same question twice, so the second call is paid for nothing
            kind, reply = "past", "How did people do this in the past?"
        with self._lock:
            self.attacker.append((kind, _usage_tokens(text), _usage_tokens(reply)))
        return reply

    def attacker_usd(self) -> float:
        return sum(p * IN_PRICE + c * OUT_PRICE for _, p, c in self.attacker)


def settings(server: OpenAIServer) -> dict[str, Any]:
    attacker = {"model": "openai/siegeflow-attacker", "api_base": server.base_url,
                "input_cost_per_token": IN_PRICE, "output_cost_per_token": OUT_PRICE,
                "max_retries": 1, "backoff_initial_s": 0.01}
    return {
        "target": TargetConfig(model="openai/siegeflow-test", api_base=server.base_url,
                               max_retries=1, backoff_initial_s=0.01, timeout_s=10,
                               input_cost_per_token=TARGET_PRICE, output_cost_per_token=0.0),
        "attack": AttackSpec(name="suite", options={"techniques": [
            {"name": "past_tense", "options": {"attacker": attacker, "reformulations": 2}},
            {"name": "translation", "options": {"attacker": attacker, "languages": ["zu"]}},
        ]}),
        # Two judges read each translated answer: it is translated back once, not twice.
        "judges": JudgePanelSpec(judges=["refusal", {"name": "refusal", "label": "refusal-2"}],
                                 rule="any"),
        "goals": GoalsSpec(limit=3),
    }


@pytest.fixture
def models() -> Any:
    responder = Models()
    with OpenAIServer(responder=responder) as server:
        yield server, responder


def test_attacker_calls_are_counted_as_attacker_cost(
    prefect_api_url: str, models: Any, sqlite_url: str
) -> None:
    server, seen = models
    state = asyncio.run(attack_flow(return_state=True, db_url=sqlite_url, concurrency=4,
                                    **settings(server)))
    assert state.is_completed(), state.message
    summary = state.result()
    kinds = [k for k, _, _ in seen.attacker]
    # 3 goals: two past-tense asks, one translation each; one translation back per Zulu answer.
    assert kinds.count("past") == 6 and kinds.count("to-zulu") == 3 and kinds.count("back") == 3
    parts = summary.cost_breakdown
    assert parts["attacker_usd"] == pytest.approx(seen.attacker_usd())
    assert summary.attacker_cost_usd == pytest.approx(seen.attacker_usd())
    target_usd = sum(_usage_tokens(t) for t in seen.target) * TARGET_PRICE
    assert parts["target_usd"] == pytest.approx(target_usd) and target_usd > 0
    assert parts["judges_usd"] == 0.0  # keyword judges are free
    assert summary.cost_usd == pytest.approx(target_usd + seen.attacker_usd())
    backend = get_backend(sqlite_url)
    run = backend.get_run(summary.run_id)
    assert run is not None and run.cost_usd == pytest.approx(summary.cost_usd)
    # The translations back are recorded once per answer, on the verdict that paid for them.
    decoded = [j for j in backend.list_judgments(run_id=summary.run_id) if j.attacker_cost_usd]
    assert len(decoded) == 3
    # The report and the terminal show the attacker's share.
    from reports.cost import cost_line
    from reports.html import render_report
    from reports.load import load_run

    assert f"attacker ${seen.attacker_usd():.4f}" in cost_line(summary)
    from reports.artifacts import summary_markdown

    attacker_md = f"attacker ${seen.attacker_usd():.4f}".replace(".", "\\.")
    assert attacker_md in summary_markdown(summary)  # the Prefect summary artifact
    html = render_report(load_run(backend, summary.run_id))
    assert "of it, attacker models" in html and f"${seen.attacker_usd():.4f}" in html


def test_the_budget_includes_attacker_calls(
    prefect_api_url: str, models: Any, sqlite_url: str
) -> None:
    server, seen = models
    # Less than one goal's reformulations cost: the first goal is generated, nothing after it.
    state = asyncio.run(attack_flow(return_state=True, db_url=sqlite_url, concurrency=1,
                                    budget_usd=0.001, **settings(server)))
    assert state.is_completed(), state.message
    summary = state.result()
    assert seen.attacker_usd() > 0.001
    assert summary.stop_reason == "budget"
    assert seen.target == []  # the budget was spent before the target was asked anything
    assert sorted(k for k, _, _ in seen.attacker) == ["past", "past", "to-zulu"]  # one goal
    assert summary.cost_usd == pytest.approx(seen.attacker_usd())
