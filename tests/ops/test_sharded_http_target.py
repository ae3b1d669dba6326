"""An HTTP app target in a sharded run on the worker cluster: the `endpoint:` section travels
with the flow parameters to the shard flow runs the workers execute in their own processes,
and every goal's attempt reaches the app with its goal id and a session id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from targets import TargetConfig
from tests.ops.conftest import Cluster
from tests.ops.test_distributed import goal_file, params, trigger, wait_final
from tests.support.openai_server import start_server_process
from tracking import EvaluationStatusEnum, get_backend

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_sharded_run_of_an_http_app_target(cluster: Cluster, tmp_path: Path) -> None:
    goals = goal_file(tmp_path / "http-goals.csv", 6)
    with start_server_process(latency_s=0.02) as server:
        target = TargetConfig(model="http:ops-app", timeout_s=20, max_retries=1,
                              backoff_initial_s=0.05, endpoint={
            "url": server.base_url + "/chat/completions",
            "headers": {"X-Goal": "{goal_id}"},
            "body": {"model": "siegeflow-test", "messages": "{conversation}",
                     "user": "{session_id}"},
            "response": {"json_path": "choices[0].message.content"},
        })
        run = params(target, goals, cluster.tracking_url, shards=2, concurrency=4)
        parent = asyncio.run(trigger("siegeflow-attack/attack", run))
        (parent,) = asyncio.run(wait_final([parent.id]))
        assert parent.state.is_completed(), parent.state.message
        stats = server.stats()
    backend = get_backend(cluster.tracking_url)
    (record,) = backend.list_runs(prefect_flow_run_id=str(parent.id))
    assert (record.summary or {})["failed_shards"] == []
    results = backend.list_results(record.id)
    attempts = backend.list_attempts(record.id)
    assert len(results) == 6
    assert all(r.evaluation_status is not EvaluationStatusEnum.ERROR_AGENT_RESPONSE
               for r in results)
    assert all(a.response and not a.error for a in attempts)
    assert stats["chat_requests"] >= len(attempts)
