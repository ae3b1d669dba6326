"""What every attack technique shares: the `AttackPrompt` value, the `Technique` base class, the
injectable model call, and `prompt_hash` for idempotency keys."""

from __future__ import annotations

import contextlib
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

from goals import Goal
from targets.chat import chat_for_model as chat_for_model  # re-exported for techniques
from targets.completion import ChatFn
from targets.completion import CompletionLike as CompletionLike  # re-exported for techniques
from targets.messages import ChatMessage, UserMessage, as_messages, last_user_text, wire


@dataclass(frozen=True, kw_only=True)
class AttackPrompt:
    """One prompt to send to the target, and what produced it.

    `variant` names the template/encoding/prefix used, so reports can break results down;
    `metadata` carries what `decode` and later steps need (e.g. `prefix`, `encoding`).
    `messages` are typed (a prompt rebuilt from the store, in its OpenAI form, is converted).
    """

    technique: str
    variant: str
    messages: Sequence[ChatMessage]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", tuple(as_messages(self.messages)))

    @property
    def text(self) -> str:
        """The last user message: what a judge or report shows as "the prompt"."""
        return last_user_text(self.messages)

    @property
    def wire(self) -> list[dict[str, Any]]:
        """The messages in their OpenAI form: what the store keeps as the attempt's prompt."""
        return wire(self.messages)

    @property
    def hash(self) -> str:
        return prompt_hash(self.messages)


def prompt_hash(messages: Sequence[ChatMessage | Mapping[str, Any]]) -> str:
    """Stable sha256 (hex) of messages as canonical JSON of their OpenAI form: key order and
    spacing never matter, and typed messages hash as their stored form always did."""
    canonical = json.dumps(wire(messages), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def user(text: str) -> list[ChatMessage]:
    """A one-message conversation: the user's `text`."""
    return [UserMessage(content=text)]


@dataclass
class AttackerSpend:
    """USD an attacker model cost while one answer was decoded (a translation back): what the
    evaluation step adds to the run's budget and reports as attacker cost, not as judge cost."""

    usd: float = 0.0
    calls: int = 0


_SPEND: ContextVar[AttackerSpend | None] = ContextVar("siegeflow_attacker_spend", default=None)


@contextlib.contextmanager
def attacker_spend() -> Iterator[AttackerSpend]:
    """Meter the attacker calls made inside the block (tasks started in it report here too:
    a memoised translation is paid by the judge call that started it, once)."""
    spend = AttackerSpend()
    token = _SPEND.set(spend)
    try:
        yield spend
    finally:
        _SPEND.reset(token)


def charge_attacker(cost_usd: float | None) -> None:
    """Called by a technique after each attacker call made while decoding."""
    spend = _SPEND.get()
    if spend is not None:
        spend.usd += cost_usd or 0.0
        spend.calls += 1


class DecodeError(ValueError):
    """An answer could not be turned into text the judges can read (a translation back failed):
    recorded as that judgment's error, never as a verdict."""


class TechniqueConfig(BaseModel):
    """Base for technique configs: unknown options are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _model_option(value: Any) -> Any:
    """Accept a TargetConfig-like pydantic model or a mapping; keep a mapping as a plain dict."""
    if value is None or isinstance(value, BaseModel):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise ValueError("must be a mapping of TargetConfig fields (model, api_base, ...)")


def model_option_validator(*names: str) -> Any:
    """A pydantic validator for config fields that hold a TargetConfig-compatible model."""
    return field_validator(*names, mode="before")(lambda cls, value: _model_option(value))


C = TypeVar("C", bound=TechniqueConfig)


class Technique(ABC, Generic[C]):
    """An attack technique: turns a goal into prompts, and a response into text to judge.

    Subclasses set `Config` and are registered with `@technique("name")`; the first docstring
    line is the description shown by `siegeflow attacks`.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[TechniqueConfig]] = TechniqueConfig
    needs_model: ClassVar[bool] = False

    def __init__(self, config: C | None = None, *, attacker_chat: ChatFn | None = None) -> None:
        # `Config` is the class's own config type, which is C; a ClassVar cannot say so.
        self.config: C = config if config is not None else self.Config()  # type: ignore[assignment]  # see above
        self._attacker_chat = attacker_chat

    @abstractmethod
    async def generate(self, goal: Goal, attacker: Any = None) -> list[AttackPrompt]:
        """Prompts for one goal. `attacker` (a TargetConfig or dict) overrides the config's."""

    def decode(self, prompt: AttackPrompt, response: str) -> str:
        """The text the judges should read; most techniques judge the response as is."""
        return response

    async def adecode(self, prompt: AttackPrompt, response: str) -> str:
        """What the evaluation step awaits: `decode`, unless decoding needs a model call
        (a translation back into English); composite techniques unwind through it."""
        return self.decode(prompt, response)

    def _prompt(self, goal: Goal, variant: str, messages: Sequence[ChatMessage],
                **metadata: Any) -> AttackPrompt:
        return AttackPrompt(
            technique=self.name,
            variant=variant,
            messages=messages,
            metadata={"goal_id": goal.id, "goal_index": goal.index, **metadata},
        )
