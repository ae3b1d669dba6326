"""The siegeflow heartbeat events the zombie automation watches (flows/zombies.py), without a
server: none is sent once `stop()` returned, the last event says they stopped and follows the
last heartbeat, and the automation waits for exactly these events."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from flows import zombies


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    lock = threading.Lock()

    def emit_event(**kwargs: Any) -> Any:
        with lock:
            event = {**kwargs, "id": len(sent)}
            sent.append(event)
        return event

    import prefect.events

    monkeypatch.setattr(prefect.events, "emit_event", emit_event)
    return sent


def test_no_heartbeat_after_stop_and_the_stop_event_follows_the_last(
    emitted: list[dict[str, Any]],
) -> None:
    beats = zombies.Heartbeats({"prefect.resource.id": "prefect.flow-run.x"}, [], period_s=0.01)
    time.sleep(0.2)
    beats.stop()
    count = len(emitted)
    time.sleep(0.1)
    assert len(emitted) == count, "a heartbeat came after stop()"
    *heartbeats, stopped = emitted
    assert len(heartbeats) >= 3 and beats.sent == len(heartbeats)
    assert {e["event"] for e in heartbeats} == {zombies.HEARTBEAT_EVENT}
    assert stopped["event"] == zombies.STOPPED_EVENT
    assert stopped["follows"] is heartbeats[-1]
    beats.stop()  # a second stop sends nothing
    assert len(emitted) == count


def test_the_automation_watches_siegeflow_heartbeats_with_the_configured_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIEGEFLOW_ZOMBIE_SILENCE_S", "30")
    trigger = zombies.zombie_automation().trigger
    assert trigger.after == {zombies.HEARTBEAT_EVENT}
    assert trigger.expect == {zombies.HEARTBEAT_EVENT, zombies.STOPPED_EVENT,
                              *zombies.TERMINAL_EVENTS}
    assert "prefect.flow-run.heartbeat" not in trigger.after | trigger.expect
    assert trigger.within.total_seconds() == 30
    assert zombies.heartbeat_period_s() == 10


def test_no_heartbeats_outside_a_tagged_flow_run() -> None:
    assert zombies.start_heartbeats() is None  # no flow run here


def test_the_heartbeat_events_stop_even_when_the_store_heartbeat_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store heartbeat task that died (store down) must not keep the events going past the
    flow body: they would reach the server after the run's final state."""
    import asyncio

    from flows import run_record
    from tasks.context import RunRef

    class FakeBeats:
        stopped = False

        def stop(self) -> None:
            self.stopped = True

    beats = FakeBeats()

    async def store_down() -> None:
        raise RuntimeError("store down")

    monkeypatch.setattr(zombies, "start_heartbeats", lambda: beats)
    monkeypatch.setattr(run_record, "start_heartbeat",
                        lambda ref: asyncio.create_task(store_down()))
    monkeypatch.setattr(run_record, "deliver_prefect_events", lambda: None)

    async def body() -> None:
        async with run_record.heartbeat(RunRef(db_url="sqlite://", run_id="r")):
            await asyncio.sleep(0.05)

    with pytest.raises(RuntimeError, match="store down"):
        asyncio.run(body())
    assert beats.stopped
