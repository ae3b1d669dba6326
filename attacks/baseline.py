"""The control: the goal sent as is. Every report needs it to show what the attacks add."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from attacks.base import AttackPrompt, Technique, TechniqueConfig, user
from attacks.registry import technique
from goals import Goal
from targets.messages import SystemMessage


class BaselineConfig(TechniqueConfig):
    system_prompt: str | None = Field(
        default=None, description="Optional system message sent before the goal."
    )


@technique("baseline")
class Baseline(Technique[BaselineConfig]):
    """The goal as is, unmodified: the control that attack success is compared against."""

    Config = BaselineConfig

    async def generate(self, goal: Goal, attacker: Any = None) -> list[AttackPrompt]:
        messages = user(goal.request)
        if self.config.system_prompt:
            messages = [SystemMessage(content=self.config.system_prompt), *messages]
        return [self._prompt(goal, "plain", messages)]
