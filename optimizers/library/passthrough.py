"""The control optimizer: never injects, so a run shows how the target behaves unattacked."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from optimizers.base import Optimizer
from optimizers.events import (
    ControllableNoInjection,
    ControllablePostCallEvent,
    ControllablePreCallEvent,
    Event,
    EventResponse,
    RunEndEvent,
    RunEndResponse,
)
from optimizers.library.common import OptimizerConfig
from optimizers.registry import optimizer


class PassthroughConfig(OptimizerConfig):
    runs: int = Field(1, ge=1, le=100_000, description="Runs before answering done")


@optimizer("passthrough")
class Passthrough(Optimizer):
    """Control: never injects; done after `runs` runs (default 1)."""

    Config = PassthroughConfig
    needs_attacker: ClassVar[bool] = False
    consumption: ClassVar[str] = "sequential"

    def __init__(self, config: PassthroughConfig | None = None) -> None:
        super().__init__()
        self.config = config or PassthroughConfig()

    async def on_event(self, event: Event) -> EventResponse:
        if isinstance(event, ControllablePreCallEvent | ControllablePostCallEvent):
            return ControllableNoInjection(event=event)
        if isinstance(event, RunEndEvent):
            # RunEnd is answered before the run is archived: this run is not counted yet.
            return RunEndResponse(
                event=event, done=len(self.past_trajectories) + 1 >= self.config.runs
            )
        return EventResponse(event=event)
