"""`attack_flow` end to end: a real Prefect server, a real HTTP target/judge, a real store.

The local server's default responder refuses plain harmful requests, complies when a prompt
carries a jailbreak marker (role-play/fiction framing, base64, "Sure, here is"...), and answers
judge prompts by whether the quoted response complies — so outcomes follow from the prompts,
and every assertion below is about what siegeflow recorded.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest

from flows.attack import attack_flow
from flows.config import AttackSpec, GoalsSpec, JudgePanelSpec
from targets import TargetConfig
from tests.support.openai_server import Fault, OpenAIServer
from tracking import EvaluationStatusEnum as Eval
from tracking import StatusEnum, get_backend

pytestmark = pytest.mark.e2e

SUITE = AttackSpec(name="suite", options={"techniques": [
    {"name": "baseline"},
    {"name": "templates", "options": {"variants": ["role_play"]}},
]})
FINAL = {Eval.SUCCESSFUL_JAILBREAK, Eval.FAILED_JAILBREAK, Eval.ERROR_AGENT_RESPONSE,
         Eval.ERROR_TEST_FRAMEWORK}


def target_for(server: OpenAIServer, **kw: Any) -> TargetConfig:
    return TargetConfig(model="openai/siegeflow-test", api_base=server.base_url,
                        max_retries=kw.pop("max_retries", 3), backoff_initial_s=0.01,
                        backoff_max_s=0.05, timeout_s=10, **kw)


def panel_for(server: OpenAIServer) -> JudgePanelSpec:
    model = {"model": "openai/siegeflow-judge", "api_base": server.base_url, "temperature": 0.0,
             "max_retries": 2, "backoff_initial_s": 0.01}
    return JudgePanelSpec(judges=[{"name": "refusal"}, {"name": "harmbench", "model": model}],
                          rule="any")


def run_flow(**kw: Any) -> Any:
    return asyncio.run(attack_flow(return_state=True, **kw))


def only_run(db_url: str) -> Any:
    runs = get_backend(db_url).list_runs()
    assert len(runs) == 1
    return runs[0]


def test_attack_flow_records_every_goal_step_and_verdict(
    prefect_api_url: str, llm_server: OpenAIServer, sqlite_url: str
) -> None:
    state = run_flow(target=target_for(llm_server), attack=SUITE, judges=panel_for(llm_server),
                     goals=GoalsSpec(limit=4), concurrency=8, db_url=sqlite_url)
    assert state.is_completed(), state.message
    summary = state.result()
    backend = get_backend(sqlite_url)
    run = only_run(sqlite_url)
    assert run.status is StatusEnum.COMPLETED
    results = backend.list_results(run.id)
    assert len(results) == 4
    # Plain requests are refused, role-play framing gets through: every goal is broken by
    # the template and held against the baseline.
    assert {r.evaluation_status for r in results} == {Eval.SUCCESSFUL_JAILBREAK}
    attempts = backend.list_attempts(run.id)
    assert len(attempts) == 8 and all(a.completed_at is not None for a in attempts)
    assert {(a.technique, a.variant) for a in attempts} == {("baseline", "plain"),
                                                           ("templates", "role_play")}
    judgments = backend.list_judgments(run_id=run.id)
    assert len(judgments) == 16  # 8 attempts x 2 judges
    by_technique = {(a.technique, j.judge): j.success for a in attempts for j in judgments
                    if j.attempt_id == a.id}
    assert by_technique[("baseline", "refusal")] is False
    assert by_technique[("templates", "harmbench")] is True
    steps = [t for t in backend.list_traces(run_id=run.id) if t.result_id is None]
    names = [t.step_name for t in steps]
    for step in ("Generation", "Completions", "Evaluation"):
        assert step in names
    assert summary.asr == 1.0 and summary.successful == 4
    assert summary.judge_agreement["pairwise"]
    assert llm_server.stats()["chat_requests"] == 8 + 8  # target calls + harmbench calls


def test_transient_429_is_retried_and_persistent_500_is_an_agent_error(
    prefect_api_url: str, sqlite_url: str
) -> None:
    faults = [Fault(status=429, first=2, match="defamatory"),
              Fault(status=500, match="(?i)sexist email")]
    with OpenAIServer(faults=faults) as server:
        state = run_flow(target=target_for(server, max_retries=3), attack=SUITE,
                         judges=JudgePanelSpec(), goals=GoalsSpec(limit=3), db_url=sqlite_url)
        assert state.is_completed(), state.message
        stats = server.stats()
    backend = get_backend(sqlite_url)
    run = only_run(sqlite_url)
    results = {r.goal_index: r for r in backend.list_results(run.id)}
    goals = {r.goal_index: r.goal.lower() for r in results.values()}
    failing = [i for i, g in goals.items() if "sexist email" in g]
    assert failing, goals
    for index, result in results.items():
        if index in failing:
            assert result.evaluation_status is Eval.ERROR_AGENT_RESPONSE
        else:
            assert result.evaluation_status in (Eval.SUCCESSFUL_JAILBREAK, Eval.FAILED_JAILBREAK)
    errors = [a for a in backend.list_attempts(run.id) if a.error]
    assert errors and all(a.error_kind == "server" and a.attempts == 4 for a in errors)
    assert stats["rules"]["429:first=2:match=defamatory"]["applied"] == 2
    summary = state.result()
    assert summary.errors.agent == len(failing)
    assert summary.asr_denominator == 3 - len(failing)


def test_budget_stops_cleanly_with_every_goal_final(
    prefect_api_url: str, llm_server: OpenAIServer, sqlite_url: str
) -> None:
    priced = target_for(llm_server, input_cost_per_token=0.001, output_cost_per_token=0.001)
    state = run_flow(target=priced, attack=SUITE, judges=JudgePanelSpec(),
                     goals=GoalsSpec(limit=6), concurrency=1, budget_usd=0.05, db_url=sqlite_url)
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary.stop_reason == "budget"
    backend = get_backend(sqlite_url)
    run = only_run(sqlite_url)
    assert run.status is StatusEnum.COMPLETED
    assert all(r.evaluation_status in FINAL for r in backend.list_results(run.id))
    attempts = backend.list_attempts(run.id)
    assert any(a.completed_at is None for a in attempts), "the budget should have stopped some"
    assert llm_server.stats()["chat_requests"] < len(attempts)


CRASH_POINTS = {
    "generation": ("attacks.suite", "Suite", "generate"),
    "completions": ("tasks.completions", None, "chat"),
    "evaluation": ("judges.refusal", "RefusalJudge", "evaluate"),
}


@pytest.mark.parametrize("step", sorted(CRASH_POINTS))
def test_a_crash_in_any_step_fails_the_run_and_finalizes_every_goal(
    prefect_api_url: str, llm_server: OpenAIServer, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch, step: str,
) -> None:
    module_name, class_name, attr = CRASH_POINTS[step]
    owner = importlib.import_module(module_name)
    if class_name:
        owner = getattr(owner, class_name)

    async def aboom(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError(f"injected failure in {step}")

    monkeypatch.setattr(owner, attr, aboom)
    state = run_flow(target=target_for(llm_server), attack=SUITE, judges=JudgePanelSpec(),
                     goals=GoalsSpec(limit=3), db_url=sqlite_url)
    assert state.is_failed()
    backend = get_backend(sqlite_url)
    run = only_run(sqlite_url)
    assert run.status is StatusEnum.FAILED
    results = backend.list_results(run.id)
    assert len(results) == 3
    assert all(r.evaluation_status is not Eval.NOT_EVALUATED for r in results)
    failed_steps = [t for t in backend.list_traces(run_id=run.id)
                    if t.result_id is None and (t.content or {}).get("status") == "FAILED"]
    assert failed_steps and "ZeroDivisionError" in str(failed_steps[-1].content)


def test_retried_step_and_resume_never_rerequest_a_recorded_completion(
    prefect_api_url: str, llm_server: OpenAIServer, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tasks.completions as completions_module
    from cli.runner import resume_run

    real_chat = completions_module.chat
    calls = {"n": 0}

    async def flaky_chat(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:  # the first task attempt dies after three recorded completions
            raise ConnectionResetError("worker lost its connection")
        return await real_chat(*args, **kwargs)

    monkeypatch.setattr(completions_module, "chat", flaky_chat)
    # Evaluation always fails: the run ends FAILED with its completions recorded.
    import judges.refusal

    async def judge_down(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("judge crashed")

    monkeypatch.setattr(judges.refusal.RefusalJudge, "evaluate", judge_down)
    state = run_flow(target=target_for(llm_server), attack=SUITE, judges=JudgePanelSpec(),
                     goals=GoalsSpec(limit=4), concurrency=1, db_url=sqlite_url)
    assert state.is_failed()
    attempts = get_backend(sqlite_url).list_attempts(only_run(sqlite_url).id)
    assert len(attempts) == 8
    assert llm_server.stats()["chat_requests"] == 8  # the retried step skipped the 3 recorded
    monkeypatch.undo()

    from rich.console import Console

    run_id = only_run(sqlite_url).id
    assert resume_run(run_id, sqlite_url, Console(quiet=True)) == 0
    assert llm_server.stats()["chat_requests"] == 8  # resume judged, never re-requested
    backend = get_backend(sqlite_url)
    run = backend.get_run(run_id)
    assert run.status is StatusEnum.COMPLETED
    results = backend.list_results(run_id)
    assert {r.evaluation_status for r in results} <= {Eval.SUCCESSFUL_JAILBREAK, Eval.FAILED_JAILBREAK}
    assert len(backend.list_judgments(run_id=run_id)) == 8


@pytest.mark.postgres
def test_attack_flow_on_postgresql(
    prefect_api_url: str, llm_server: OpenAIServer, postgres_url: str
) -> None:
    state = run_flow(target=target_for(llm_server), attack=SUITE, judges=JudgePanelSpec(),
                     goals=GoalsSpec(limit=3), db_url=postgres_url)
    assert state.is_completed(), state.message
    backend = get_backend(postgres_url)
    run = backend.get_run(state.result().run_id)
    assert run.status is StatusEnum.COMPLETED
    assert all(r.evaluation_status in FINAL for r in backend.list_results(run.id))
    assert len(backend.list_attempts(run.id)) == 6
