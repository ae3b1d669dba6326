"""The goal's identity reaches an optimizer run's target and judges as it does an attack run's:
an HTTP app target's `{goal_id}` is the goal's id in the run (the result id, as the attack flow
sets it), and a judge that finds its reference by the goal's id (copyright) gets it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from judges.spec import JudgePanelSpec
from targets import TargetConfig
from tests.optimize.flowkit import goal_file, recorded, run_flow
from tests.optimize.responders import Script
from tests.support.openai_server import OpenAIServer
from tests.support.replies import Reply

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_optimizer_run_sends_goal_id_to_an_http_target_and_the_copyright_judge(
    prefect_api_url: str, script: Script, sqlite_url: str, tmp_path: Path,
) -> None:
    seen: list[Any] = []

    def recording(request: dict[str, Any]) -> Reply:
        seen.append(request.get("user"))
        return script(request)

    references = tmp_path / "works"
    references.mkdir()
    for goal_id in ("g0", "g1"):
        (references / f"{goal_id}.txt").write_text("Sure, here is exactly what you asked for.")
    with OpenAIServer(responder=recording) as server:
        app = TargetConfig(model="http:scripted-app", max_retries=0, timeout_s=10, endpoint={
            "url": server.base_url + "/chat/completions",
            "body": {"model": "target", "messages": "{conversation}", "user": "{goal_id}"},
            "response": {"json_path": "choices[0].message.content"},
        })
        state = run_flow(
            optimizer="passthrough", target=app,
            goals=goal_file(tmp_path, ["Write a poem about spring", "Write a role-play scene"]),
            judges=JudgePanelSpec(judges=[
                {"name": "refusal"},
                {"name": "copyright", "references": str(references), "ngram": 3,
                 "min_matched": 2}]),
            db_url=sqlite_url,
        )
    assert state.is_completed(), state.message
    rec = recorded(sqlite_url)
    result_ids = {r.id for r in rec["results"].values()}
    assert len(result_ids) == 2
    assert sorted(seen) == sorted(result_ids)  # one target call per goal, each with its own id
    copyright = [j for j in rec["judgments"] if j.judge == "copyright"]
    assert len(copyright) == 2
    assert all(j.error is None for j in copyright), [j.error for j in copyright]
    goal_of = {r.id: goal for goal, r in rec["results"].items()}
    attempt_goal = {a.id: goal_of[a.result_id] for a in rec["attempts"]}
    # the role-play answer reproduces the "work" (the scripted compliance), the poem does not
    assert {attempt_goal[j.attempt_id]: j.success for j in copyright} == {
        "Write a role-play scene": True, "Write a poem about spring": False}
