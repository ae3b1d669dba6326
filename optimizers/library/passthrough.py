"""The control optimizer: never injects, so a run shows how the target behaves unattacked."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from optimizers.events import RunEndEvent
from optimizers.library.common import AttackerOptimizer, OptimizerConfig
from optimizers.registry import optimizer


class PassthroughConfig(OptimizerConfig):
    runs: int = Field(1, ge=1, le=100_000, description="Runs before answering done")


@optimizer("passthrough")
class Passthrough(AttackerOptimizer):
    """Control: never injects; done after `runs` runs (default 1)."""

    Config = PassthroughConfig
    needs_attacker: ClassVar[bool] = False
    consumption: ClassVar[str] = "sequential"

    def __init__(self, config: PassthroughConfig | None = None) -> None:
        super().__init__()
        self.config = config or PassthroughConfig()

    async def run_ended(self, event: RunEndEvent) -> bool:
        return self.runs_so_far >= self.config.runs  # never injects (the default `inject`)
