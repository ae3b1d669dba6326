"""Zombie flow runs: deployment runs whose process or worker vanished are marked Crashed.

A SIGKILLed worker, a lost machine or a frozen process reports nothing, so Prefect would show its
flow runs Running for ever and a sharded run's parent would wait on them. Prefect's own
machinery covers it: flow-run processes emit `prefect.flow-run.heartbeat` events every
`PREFECT_FLOWS_HEARTBEAT_FREQUENCY` seconds (prefect.yaml sets `HEARTBEAT_S` for siegeflow's
deployments), and a proactive automation marks a run Crashed when, after a heartbeat, neither
another heartbeat nor a final state arrives within `SILENCE_S`. `siegeflow deploy` creates (or
refreshes) that automation; it only watches runs tagged `siegeflow` (every siegeflow
deployment's tag), so other flows on the same server keep their own heartbeat settings.

Bound, by design: a run that stops is Crashed `SILENCE_S` after its last heartbeat (+ up to 5 s,
the server's proactive-trigger period); that heartbeat was at most `HEARTBEAT_S` before the
death, so 60-95 s after it. Not always in practice (issue 24: 148 s once, and two shards whose
bucket never opened), so a sharded run's parent also watches its shards and crashes a silent
one itself (`flows.shard._watch`, `SIEGEFLOW_SHARD_SILENCE_S`) before running it again.
A heartbeat reaching the server after the run's final-state event opens a bucket that fires on
a finished run; flow bodies therefore deliver their queued events before they end
(`flows.run_record.deliver_prefect_events`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

#: Seconds between flow-run heartbeats of siegeflow deployment runs (Prefect's minimum is 30).
HEARTBEAT_S = 30
#: Silence after a heartbeat that marks a run Crashed: three missed beats.
SILENCE_S = 90
AUTOMATION_NAME = "siegeflow: crash zombie flow runs"
TAG = "siegeflow"


def zombie_automation() -> Any:
    """The automation, as Prefect's documentation describes it, restricted to siegeflow runs."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return Automation(
        name=AUTOMATION_NAME,
        description="Marks siegeflow flow runs Crashed when their heartbeats stop "
                    f"({SILENCE_S} s without one): their process or worker is gone.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed", "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification({"prefect.resource.id": f"prefect.tag.{TAG}"}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=SILENCE_S),
        ),
        actions=[ChangeFlowRunState(
            state=StateType.CRASHED,
            message=f"no heartbeat for {SILENCE_S} s: the flow run's process or worker is gone",
        )],
    )


async def ensure_zombie_automation() -> str:
    """Create the automation on the current Prefect API, or bring an existing one up to date."""
    from prefect.automations import Automation

    wanted = zombie_automation()
    try:
        existing = await Automation.aread(name=AUTOMATION_NAME)
    except ValueError:  # "not found"
        created = await wanted.acreate()
        return str(created.id)
    wanted.id = existing.id
    await wanted.aupdate()
    return str(existing.id)
