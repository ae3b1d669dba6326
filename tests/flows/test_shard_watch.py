"""The parent's watch over its shard flow runs: a dead shard (worker gone) is marked Crashed
by the parent itself when Prefect's zombie automation has not, and a live one never is."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from flows import shard
from flows.shard import ShardLife, dead_for

SILENCE = 120.0


def test_a_running_shard_is_dead_only_after_its_heartbeats_stop_for_the_bound() -> None:
    now = 10_000.0
    beating = ShardLife(state_type="RUNNING", state_since=now - 600, last_heartbeat=now - 30)
    assert dead_for(beating, now, SILENCE) is None
    stopped = ShardLife(state_type="RUNNING", state_since=now - 600, last_heartbeat=now - 121)
    assert dead_for(stopped, now, SILENCE) == pytest.approx(121)
    # A retry's new Running state counts as a sign of life, as a heartbeat does.
    retried = ShardLife(state_type="RUNNING", state_since=now - 10, last_heartbeat=now - 300)
    assert dead_for(retried, now, SILENCE) is None
    # Heartbeats off in its deployment: silence says nothing, the shard timeout applies.
    never = ShardLife(state_type="RUNNING", state_since=now - 3600, last_heartbeat=None)
    assert dead_for(never, now, SILENCE) is None


def test_a_claimed_shard_whose_worker_died_before_starting_it_is_dead_after_the_bound() -> None:
    now = 10_000.0
    assert dead_for(ShardLife(state_type="PENDING", state_since=now - 60, last_heartbeat=None),
                    now, SILENCE) is None
    assert dead_for(ShardLife(state_type="PENDING", state_since=now - 130, last_heartbeat=None),
                    now, SILENCE) == pytest.approx(130)
    # Waiting for a worker (Scheduled, Late, AwaitingConcurrencySlot) is not a death.
    assert dead_for(ShardLife(state_type="SCHEDULED", state_since=now - 9999,
                              last_heartbeat=None), now, SILENCE) is None


class FakeClient:
    """Prefect's client as `_watch` uses it: a run Running whose heartbeat stopped long ago."""

    def __init__(self, heartbeat_age_s: float) -> None:
        from prefect.states import Running

        self.state: Any = Running()
        self.state.timestamp = datetime.fromtimestamp(time.time() - 1000, UTC)
        self.heartbeat = time.time() - heartbeat_age_s
        self.set_calls: list[Any] = []

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read_flow_run(self, flow_run_id: Any) -> Any:
        return SimpleNamespace(id=flow_run_id, state=self.state)

    async def read_events(self, filter: Any, limit: int) -> Any:
        assert filter.resource.id[0].startswith("prefect.flow-run.")
        occurred = datetime.fromtimestamp(self.heartbeat, UTC)
        return SimpleNamespace(events=[SimpleNamespace(occurred=occurred)])

    async def set_flow_run_state(self, flow_run_id: Any, state: Any, force: bool) -> None:
        assert force
        self.set_calls.append(state)
        self.state = state


def _watch_with(monkeypatch: pytest.MonkeyPatch, client: FakeClient, silence: str) -> Any:
    import prefect.client.orchestration as orchestration

    monkeypatch.setenv("SIEGEFLOW_SHARD_SILENCE_S", silence)
    monkeypatch.setattr(orchestration, "get_client", lambda: client)
    monkeypatch.setattr(shard, "POLL_S", 0.01)
    return asyncio.run(asyncio.wait_for(shard._watch(uuid.uuid4(), timeout_s=None), 5))


def test_the_parent_marks_a_silent_shard_crashed_with_a_message_that_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = FakeClient(heartbeat_age_s=200)
    final = _watch_with(monkeypatch, client, "120")
    assert final.state.is_crashed() and len(client.set_calls) == 1
    assert "no heartbeat" in final.state.message
    assert "SIEGEFLOW_SHARD_SILENCE_S" in final.state.message


def test_a_shard_that_beats_is_left_alone_until_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.states import Completed

    client = FakeClient(heartbeat_age_s=5)

    async def finish_later() -> None:
        await asyncio.sleep(0.2)
        client.state = Completed()

    async def both() -> Any:
        import prefect.client.orchestration as orchestration

        monkeypatch.setattr(orchestration, "get_client", lambda: client)
        monkeypatch.setattr(shard, "POLL_S", 0.01)
        monkeypatch.setenv("SIEGEFLOW_SHARD_SILENCE_S", "120")
        done, _ = await asyncio.gather(shard._watch(uuid.uuid4(), timeout_s=None),
                                       finish_later())
        return done

    final = asyncio.run(asyncio.wait_for(both(), 5))
    assert final.state.is_completed() and client.set_calls == []
