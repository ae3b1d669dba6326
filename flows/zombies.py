"""Zombie flow runs: deployment runs whose process or worker vanished are marked Crashed.

A SIGKILLed worker, a lost machine or a frozen process reports nothing, so Prefect would show its
flow runs Running for ever and a sharded run's parent would wait on them. A proactive
automation, created (or refreshed) by `siegeflow deploy`, marks a run Crashed when, after a
*siegeflow* heartbeat, neither another one, nor the event that says they stopped, nor a final
state arrives within `SIEGEFLOW_ZOMBIE_SILENCE_S` (90 s). It only watches runs tagged
`siegeflow` (every siegeflow deployment's tag), so other flows on the server are left alone.

Why siegeflow's own heartbeat event and not Prefect's `prefect.flow-run.heartbeat` (issue 24:
the automation fired ~90 s after short runs had Completed, "Run is already in terminal state
COMPLETED"): Prefect's heartbeats come from a thread of the flow engine that runs until after
the final state is proposed, and are sent by the process's events worker whenever it gets to
them, while the server emits the final-state event itself; a heartbeat that the server's
triggers see *after* that event opens a new bucket (prefect/server/events/triggers.py,
`reactive_evaluation`: an `after` event always does), which fires on the finished run. Here, by
construction:

* heartbeats (`HEARTBEAT_EVENT`) are sent by siegeflow's heartbeat (`flows.run_record.heartbeat`,
  around every flow body) from a thread that is stopped and joined **before the flow body
  returns**, so none is emitted once the run's final state can exist;
* then one `STOPPED_EVENT` is sent with `follows` = the last heartbeat. The server's triggers
  process an event that follows another only after that one (causal ordering,
  prefect/server/events/ordering: a follower waits up to 15 min for its leader), so the last
  heartbeat's bucket is always closed by it, whatever order the two arrive in; earlier
  heartbeats that arrive late are older than the open bucket and ignored ("late event");
* the process's queued events are then delivered (`deliver_prefect_events`) before the final
  state is proposed.

The final-state events stay in `expect` for runs that end without a `STOPPED_EVENT` (a process
killed while its worker lives: the worker reports Crashed). The action cannot hurt a finished
run anyway: without `force`, Prefect refuses to leave a terminal state (the failed action is
only an error event).

Not covered by the automation: a run that dies before its first siegeflow heartbeat (during
setup: loading goals, opening its run) — it never opened a bucket. The worker reports it if it
lives; else, for a shard, its parent's watch (`flows.shard._watch`, on Prefect's heartbeats,
which start with the flow engine) crashes it; an unsharded run opened nothing yet or shows in
`siegeflow runs stale`. Likewise a run killed in the moment between its heartbeats' stop and
its final state.

Bound, by design: a run that stops is Crashed `SILENCE` after its last heartbeat (+ up to 5 s,
the server's proactive-trigger period), which came at most `SILENCE / 3` before the death.
"""

from __future__ import annotations

import contextvars
import threading
from datetime import timedelta
from typing import Any

from settings import current_settings

AUTOMATION_NAME = "siegeflow: crash zombie flow runs"
TAG = "siegeflow"
HEARTBEAT_EVENT = "siegeflow.flow-run.heartbeat"
STOPPED_EVENT = "siegeflow.flow-run.heartbeat-stopped"
TERMINAL_EVENTS = frozenset({"prefect.flow-run.Completed", "prefect.flow-run.Failed",
                             "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"})
#: Prefect's own flow-run heartbeat (the engine's thread; PREFECT_FLOWS_HEARTBEAT_FREQUENCY).
PREFECT_HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
#: Every event that shows a flow run's process alive (the shard watch, `server stop`).
LIFE_EVENTS = (HEARTBEAT_EVENT, PREFECT_HEARTBEAT_EVENT)


def silence_s() -> float:
    """Silence after a heartbeat that marks a run Crashed (`SIEGEFLOW_ZOMBIE_SILENCE_S`)."""
    return current_settings().zombie_silence_s


def heartbeat_period_s() -> float:
    """Seconds between a flow run's siegeflow heartbeats: three per silence window."""
    return silence_s() / 3


def zombie_automation(silence: float | None = None) -> Any:
    """The automation, restricted to siegeflow runs; `silence`: default `silence_s()`."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    window = silence_s() if silence is None else silence
    return Automation(
        name=AUTOMATION_NAME,
        description="Marks siegeflow flow runs Crashed when their siegeflow heartbeats stop "
                    f"({window:.0f} s without one): their process or worker is gone.",
        trigger=EventTrigger(
            after={HEARTBEAT_EVENT},
            expect={HEARTBEAT_EVENT, STOPPED_EVENT, *TERMINAL_EVENTS},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification({"prefect.resource.id": f"prefect.tag.{TAG}"}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=window),
        ),
        actions=[ChangeFlowRunState(
            state=StateType.CRASHED,
            message=f"no siegeflow heartbeat for {window:.0f} s: the flow run's process or "
                    "worker is gone",
        )],
    )


def _shape(automation: Any) -> Any:
    """What an automation does, without its ids (to compare the stored one with the wanted)."""
    trigger = automation.trigger
    return (automation.name, automation.description, automation.enabled,
            sorted(trigger.after), sorted(trigger.expect),
            trigger.match.model_dump(mode="json"), trigger.match_related.model_dump(mode="json")
            if not isinstance(trigger.match_related, list)
            else [m.model_dump(mode="json") for m in trigger.match_related],
            sorted(trigger.for_each), str(trigger.posture), trigger.threshold, trigger.within,
            [action.model_dump(mode="json") for action in automation.actions])


async def ensure_zombie_automation() -> str:
    """Create the automation on the current Prefect API, or bring an existing one up to date —
    only when it differs: Prefect gives an updated automation's trigger new ids
    (prefect/server/api/automations.py, `reset_ids`), which orphans every open bucket, so a run
    that died before the update would never be crashed by it."""
    from prefect.automations import Automation

    wanted = zombie_automation()
    try:
        existing = await Automation.aread(name=AUTOMATION_NAME)
    except ValueError:  # "not found"
        created = await wanted.acreate()
        return str(created.id)
    if _shape(existing) != _shape(wanted):
        wanted.id = existing.id
        await wanted.aupdate()
    return str(existing.id)


def _event_template(flow_run: Any, flow_name: str) -> tuple[dict[str, str], list[Any]]:
    """Resource and related resources of a flow run's heartbeat, as Prefect builds its own
    (`prefect.flow_engine.BaseFlowRunEngine._build_heartbeat_event_template`)."""
    from prefect import __version__
    from prefect.events.related import tags_as_related_resources
    from prefect.events.schemas.events import RelatedResource

    resource = {"prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
                "prefect.resource.name": flow_run.name or "", "prefect.version": __version__}
    related: list[Any] = []
    if flow_run.flow_id:
        related.append(RelatedResource.model_validate({
            "prefect.resource.id": f"prefect.flow.{flow_run.flow_id}",
            "prefect.resource.role": "flow", "prefect.resource.name": flow_name}))
    if flow_run.deployment_id:
        related.append(RelatedResource.model_validate({
            "prefect.resource.id": f"prefect.deployment.{flow_run.deployment_id}",
            "prefect.resource.role": "deployment"}))
    related += tags_as_related_resources(set(flow_run.tags or []))
    return resource, related


class Heartbeats:
    """A flow run's siegeflow heartbeats, from a thread (a busy event loop cannot hold them
    back), until `stop()`: that joins the thread, so no heartbeat follows it, and sends
    `STOPPED_EVENT` after the last one."""

    def __init__(self, resource: dict[str, str], related: list[Any], period_s: float) -> None:
        self._resource, self._related, self._period_s = resource, related, period_s
        self._stop = threading.Event()
        self._last: Any = None  # the last heartbeat Event emitted
        self.sent = 0
        # The caller's context: the thread must see the same Prefect settings (API URL).
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._loop,),
                                        name="siegeflow-heartbeats", daemon=True)
        self._thread.start()

    def _emit(self, name: str, follows: Any = None) -> Any:
        from prefect.events import emit_event

        try:
            return emit_event(event=name, resource=self._resource, related=self._related,
                              follows=follows)
        except Exception:  # noqa: BLE001 - a heartbeat never breaks a run
            return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            event = self._emit(HEARTBEAT_EVENT)
            if event is not None:
                self._last = event
                self.sent += 1
            self._stop.wait(self._period_s)

    def stop(self) -> None:
        """Blocking: end the heartbeats, then say so (a no-op the second time)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        if self._last is not None:
            self._emit(STOPPED_EVENT, follows=self._last)


def start_heartbeats() -> Heartbeats | None:
    """Siegeflow heartbeats for the current flow run when the automation watches it (tagged
    `siegeflow`: deployment runs); None otherwise (a `siegeflow run` in the CLI process)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    if flow_run is None or TAG not in (flow_run.tags or []):
        return None
    flow_name = context.flow.name if context is not None and context.flow else ""
    resource, related = _event_template(flow_run, flow_name)
    return Heartbeats(resource, related, heartbeat_period_s())
