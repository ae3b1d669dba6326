"""Composition: techniques stacked like converters, each step rewriting what the previous one
made — e.g. a goal encoded in Base64, then wrapped in a role-play:

    {"name": "compose", "options": {"steps": ["encodings:base64", "templates:role_play"]}}

A step is `"name"`, `"name:variant"` (shorthand for `{"variants": [variant]}`) or
`{"name": ..., "options": {...}}`. Every step but the last must produce single user-message
prompts (their text becomes the next step's goal); a step with several variants multiplies the
prompts. `decode` unwinds in reverse: the last step decodes the answer first.

Best-of-N as a step is explicit: its samples are made here, all N at once, and rewritten by the
other steps before anything is sent, so there is no early stop. A `bon` step must say
`early_stop: false` (and N counts against `max_prompts`); alone or in a `suite`, Best-of-N streams
and stops each goal at its first success.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from attacks.attacker_output import ATTACKER_FAILURE, is_attacker_failure
from attacks.base import AttackPrompt, Technique, TechniqueConfig
from attacks.registry import TechniqueError, build_technique, get_technique, technique
from goals import Goal

#: Prompt metadata keys every technique adds; the chain does not repeat them per step.
_GOAL_KEYS = ("goal_id", "goal_index")


class ComposeStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ComposeConfig(TechniqueConfig):
    steps: list[ComposeStep] = Field(
        description="Techniques applied in order, innermost first: 'name', 'name:variant' or "
        "{name, options}; e.g. ['encodings:base64', 'templates:role_play'].",
    )
    max_prompts: int = Field(
        default=64, ge=1, le=10_000,
        description="Refuse step combinations that would make more prompts per goal than this.",
    )

    @field_validator("steps", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [parse_step(item) if isinstance(item, str) else item for item in value]

    @field_validator("steps")
    @classmethod
    def _buildable(cls, value: list[ComposeStep]) -> list[ComposeStep]:
        if not value:
            raise ValueError("compose needs at least one step")
        for i, step in enumerate(value):
            if step.name == "suite":
                raise ValueError(f"step {i}: a suite cannot be a step (compose inside a suite)")
            try:
                built = build_technique(step.name, step.options)
            except TechniqueError as exc:
                raise ValueError(f"step {i} ({step.name}): {exc}") from None
            if getattr(built, "streaming", False) and built.config.early_stop:
                raise ValueError(
                    f"step {i} ({step.name}): inside compose, Best-of-N sends all N samples of "
                    "every goal (no early stop); give it options {\"early_stop\": false} to "
                    "accept that, or run it alone or in a suite, where it stops at a goal's "
                    "first success")
        return value


def parse_step(text: str) -> dict[str, Any]:
    """`"name"` -> {name}; `"name:variant"` -> {name, options: {variants: [variant]}}."""
    name, sep, variant = text.partition(":")
    if not sep:
        return {"name": name}
    if not variant:
        raise ValueError(f"step {text!r}: expected 'name' or 'name:variant'")
    if "variants" not in get_technique(name).Config.model_fields:
        raise ValueError(f"step {text!r}: technique {name!r} has no variants; "
                         "write the step as {name, options}")
    return {"name": name, "options": {"variants": [variant]}}


@technique("compose")
class Compose(Technique[ComposeConfig]):
    """Techniques stacked: each step wraps what the previous made (e.g. role-play around Base64)."""

    Config = ComposeConfig

    def __init__(self, config: ComposeConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.steps: list[Technique[Any]] = [
            build_technique(s.name, s.options, attacker_chat=self._attacker_chat)
            for s in self.config.steps
        ]

    @property
    def needs_attacker(self) -> bool:
        return any(step.needs_model for step in self.steps)

    async def generate(self, goal: Goal, attacker: Any = None) -> list[AttackPrompt]:
        # (goal for the next step, the links made so far, their cost)
        frontier: list[tuple[Goal, list[dict[str, Any]], float]] = [(goal, [], 0.0)]
        last = len(self.steps) - 1
        made: list[AttackPrompt] = []
        for i, step in enumerate(self.steps):
            following = []
            for current, chain, cost in frontier:
                prompts = await step.generate(current, attacker)
                for prompt in prompts:
                    link = _link(prompt)
                    # An attacker's cost is shared by the prompts made from it, never repeated.
                    own = float(prompt.metadata.get("generation_cost_usd", 0.0) or 0.0)
                    spent = cost / len(prompts) + own
                    if "fallback_for" in prompt.metadata:  # the plain goal: never wrapped
                        made.append(prompt)
                        continue
                    if is_attacker_failure(prompt.metadata):  # nothing to wrap: recorded as is
                        made.append(self._final(goal, prompt, [*chain, link], spent,
                                                attacker_failure=prompt.metadata[ATTACKER_FAILURE]))
                        continue
                    if i == last:
                        made.append(self._final(goal, prompt, [*chain, link], spent))
                        continue
                    following.append((self._inner_goal(current, prompt, i), [*chain, link], spent))
            if len(following) > self.config.max_prompts:
                raise TechniqueError(f"compose: steps 0..{i} make {len(following)} prompts per "
                                     f"goal, more than max_prompts={self.config.max_prompts}")
            frontier = following
        return made

    async def adecode(self, prompt: AttackPrompt, response: str) -> str:
        text = response
        for step, link in reversed(list(zip(self.steps, _chain(prompt), strict=True))):
            text = await step.adecode(_as_prompt(link), text)
        return text

    def decode(self, prompt: AttackPrompt, response: str) -> str:
        text = response
        for step, link in reversed(list(zip(self.steps, _chain(prompt), strict=True))):
            text = step.decode(_as_prompt(link), text)
        return text

    def _inner_goal(self, goal: Goal, prompt: AttackPrompt, i: int) -> Goal:
        roles = [m.role for m in prompt.messages]
        if roles != ["user"]:
            raise TechniqueError(
                f"compose: step {i} ({self.config.steps[i].name}) made a prompt with messages "
                f"{roles}; only the last step may make more than one user message"
            )
        # The context is already inside the prompt text: it must not be prepended again.
        return replace(goal, text=prompt.text, context=None)

    def _final(self, goal: Goal, prompt: AttackPrompt, chain: list[dict[str, Any]],
               cost: float, **metadata: Any) -> AttackPrompt:
        variant = ">".join(link["variant"] for link in chain)
        return self._prompt(goal, variant, prompt.messages, chain=chain,
                            generation_cost_usd=cost, **metadata)


def _link(prompt: AttackPrompt) -> dict[str, Any]:
    meta = {k: v for k, v in prompt.metadata.items() if k not in _GOAL_KEYS}
    return {"technique": prompt.technique, "variant": prompt.variant, "metadata": meta}


def _chain(prompt: AttackPrompt) -> list[dict[str, Any]]:
    chain = prompt.metadata.get("chain")
    if not isinstance(chain, list):
        raise TechniqueError(f"prompt from {prompt.technique!r} was not made by compose")
    return chain


def _as_prompt(link: dict[str, Any]) -> AttackPrompt:
    return AttackPrompt(technique=link["technique"], variant=link["variant"], messages=[],
                        metadata=dict(link.get("metadata") or {}))
