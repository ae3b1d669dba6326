"""Several techniques as one: a scan that compares the control with the attacks in one run.

Each prompt keeps the technique that made it (so reports break results down by technique), and
`decode` hands each response back to that technique.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from attacks.base import AttackPrompt, Technique, TechniqueConfig
from attacks.compose import parse_step
from attacks.registry import TechniqueError, build_technique, technique
from goals import Goal


class SuiteMember(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class SuiteConfig(TechniqueConfig):
    techniques: list[SuiteMember] = Field(
        default_factory=lambda: [SuiteMember(name="baseline"), SuiteMember(name="templates"),
                                 SuiteMember(name="encodings")],
        description="Techniques to run for every goal, each with its own options.",
    )

    @field_validator("techniques", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """`"name"` or `"name:variant"`, as compose steps accept them."""
        if not isinstance(value, list):
            return value
        return [parse_step(item) if isinstance(item, str) else item for item in value]

    @field_validator("techniques")
    @classmethod
    def _valid_members(cls, value: list[SuiteMember]) -> list[SuiteMember]:
        if not value:
            raise ValueError("a suite needs at least one technique")
        names = [m.name for m in value]
        if "suite" in names:
            raise ValueError("a suite cannot contain another suite")
        if len(set(names)) != len(names):
            raise ValueError(f"technique listed twice: {names}")
        for member in value:
            build_technique(member.name, member.options)  # fails early, naming the option
        return value


@technique("suite")
class Suite(Technique[SuiteConfig]):
    """Several techniques per goal (default: baseline + templates + encodings), in one run."""

    Config = SuiteConfig

    def __init__(self, config: SuiteConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.members: dict[str, Technique[Any]] = {
            m.name: build_technique(m.name, m.options, attacker_chat=self._attacker_chat)
            for m in self.config.techniques
        }

    @property
    def needs_attacker(self) -> bool:
        return any(m.needs_model for m in self.members.values())

    async def generate(self, goal: Goal, attacker: Any = None) -> list[AttackPrompt]:
        batches = await asyncio.gather(
            *(member.generate(goal, attacker) for member in self.members.values())
        )
        return [prompt for batch in batches for prompt in batch]

    def decode(self, prompt: AttackPrompt, response: str) -> str:
        return self._member(prompt).decode(prompt, response)

    async def adecode(self, prompt: AttackPrompt, response: str) -> str:
        return await self._member(prompt).adecode(prompt, response)

    def _member(self, prompt: AttackPrompt) -> Technique[Any]:
        member = self.members.get(prompt.technique)
        if member is None:
            raise TechniqueError(f"prompt from technique {prompt.technique!r} is not in this suite")
        return member
