"""Shared pieces of the optimize-flow tests: configs pointing at the scripted server, goal files,
and a bounded way to run the flow and read back what it recorded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from flows.config import GoalsSpec, JudgePanelSpec
from flows.optimize import optimize_flow
from targets import TargetConfig
from tests.support.openai_server import OpenAIServer
from tracking import get_backend

FLOW_TIMEOUT_S = 240.0


def target_for(server: OpenAIServer, model: str = "target", **kw: Any) -> TargetConfig:
    return TargetConfig(
        model=f"openai/{model}",
        api_base=server.base_url,
        max_retries=1,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        timeout_s=10,
        **kw,
    )


def attacker_for(server: OpenAIServer, **kw: Any) -> dict[str, Any]:
    return {
        "model": "openai/attacker",
        "api_base": server.base_url,
        "max_retries": 0,
        "input_cost_per_token": 0.0001,
        "output_cost_per_token": 0.0001,
        **kw,
    }


def judge_panel(server: OpenAIServer, name: str = "harmbench") -> JudgePanelSpec:
    model = {
        "model": "openai/judge",
        "api_base": server.base_url,
        "max_retries": 0,
        "timeout_s": 10,
    }
    return JudgePanelSpec(judges=[{"name": name, "model": model}], rule="any")


def goal_file(tmp_path: Path, texts: list[str]) -> GoalsSpec:
    path = tmp_path / "goals.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"g{i}", "goal": t}) + "\n" for i, t in enumerate(texts))
    )
    return GoalsSpec(source=str(path))


def run_flow(**kw: Any) -> Any:
    """The flow's final state; a hang fails the test instead of the suite."""

    async def bounded() -> Any:
        return await asyncio.wait_for(optimize_flow(return_state=True, **kw), FLOW_TIMEOUT_S)

    return asyncio.run(bounded())


def recorded(db_url: str) -> dict[str, Any]:
    """The single run in the store with its results, attempts, judgments and goal traces."""
    backend = get_backend(db_url)
    runs = backend.list_runs()
    assert len(runs) == 1, runs
    run = runs[0]
    results = {r.goal: r for r in backend.list_results(run.id)}
    traces = [t for t in backend.list_traces(run_id=run.id) if t.result_id is not None]
    return {
        "run": run,
        "results": results,
        "attempts": backend.list_attempts(run.id),
        "judgments": backend.list_judgments(run_id=run.id),
        "traces": traces,
        "backend": backend,
    }
