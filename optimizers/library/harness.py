"""Targets with controllable and observable points: what an optimizer attacks, run by run.

A `TargetHarness` declares its points (controllables, observables), a default scope, and runs
the target once per optimizer run, asking the session (`RunHooks`) at each controllable point
and reporting each observable. The optimize flow judges the `RunOutcome`. Harnesses are
pluggable like optimizers: `chat`, `agent`, or any `TargetHarness` subclass as `module:Class`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from attacks.attacker_output import ATTACKER_FAILURE
from goals import Goal
from judges import Verdict
from optimizers.domains import Controllable, Observable, Scope, SecurityDomain
from targets import TargetConfig, chat
from targets.completion import CallUsage
from targets.messages import AssistantMessage, ChatMessage, SystemMessage, UserMessage, last_user_text


class RunHooks(Protocol):
    """The target side of an optimizer session (`OptimizerSession` satisfies it)."""

    async def pre_call(self, controllable: Controllable, request: Any) -> Any | None: ...

    async def post_call(
        self, controllable: Controllable, request: Any, response: Any
    ) -> Any | None: ...

    async def observe(self, observable: Observable, value: Any) -> None: ...


class InvalidInjectionError(TypeError):
    """An optimizer injected a value the point cannot take (an optimizer bug, not a target one)."""


@dataclass(frozen=True, kw_only=True)
class RunOutcome(CallUsage):
    """One run of the target, as judged and recorded.

    `messages` is what the target was sent for its final answer and `response` that answer;
    `checks` are the target's own verdicts (used instead of the judge panel when the harness
    declares `check_keys`); `details` goes into the run's trace.
    """

    messages: Sequence[ChatMessage]
    response: str | None
    error: str | None = None
    error_kind: str | None = None
    checks: tuple[Verdict, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    #: the optimizer's attacker could not write this run's attack (why), see `AttackerFailure`
    attacker_failure: str | None = None
    #: the plain goal was sent instead (`on_attacker_failure: send_goal`): recorded as baseline
    baseline: bool = False

    @property
    def prompt(self) -> str:
        """The last user message: what judges and reports show as the prompt."""
        return last_user_text(self.messages)


class HarnessSpec(BaseModel):
    """Which target harness to run and what the optimizer may touch in it.

    `scope`: domains the optimizer may inject into (and read); `read_only`: domains it may only
    read. None keeps the harness's defaults. `locked`: names of points nobody may overwrite.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field("chat", description="'chat', 'agent', 'framework-agent' (a LangGraph "
                      "or Agents SDK agent named by the target), or 'package.module:Class'")
    options: dict[str, Any] = Field(default_factory=dict)
    scope: list[str] | None = None
    read_only: list[str] | None = None
    locked: list[str] = Field(default_factory=list)


class _NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetHarness:
    """Base of every harness. Subclasses set `Config`, `default_scope`, and implement the points
    and `run`; they create controllables with `self.controllable(...)` so `locked` applies."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[BaseModel]] = _NoOptions
    default_scope: ClassVar[Scope] = Scope()
    check_keys: tuple[str, ...] = ()

    def __init__(
        self, target: TargetConfig, config: BaseModel, *, locked: Sequence[str] = ()
    ) -> None:
        self.target = target
        self.config = config
        self._locked = frozenset(locked)

    def controllable(self, name: str, domain: str, description: str = "") -> Controllable:
        return Controllable(
            name=name, domain=domain, description=description, read_only=name in self._locked
        )

    @property
    def controllables(self) -> tuple[Controllable, ...]:
        raise NotImplementedError

    @property
    def observables(self) -> tuple[Observable, ...]:
        return ()

    async def run(self, hooks: RunHooks, goal: Goal) -> RunOutcome:
        """One run of the target against `goal`; target failures go in the outcome, not raised."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class TurnRequest:
    """What the chat harness asks at each user turn: the turn index and the default message
    (the goal at turn 0; None later — no injection then ends the conversation)."""

    turn: int
    default: str | None


@dataclass(frozen=True, kw_only=True)
class UserTurn:
    """An injected user turn; `rewind` first drops that many earlier exchanges (backtracking)."""

    content: str
    rewind: int = 0


@dataclass(frozen=True, kw_only=True)
class AttackerFailure:
    """Injected when the optimizer's attacker gave nothing usable (after its re-asks).

    At a conversation's first turn nothing is sent: the run is recorded as an attacker failure
    (never as the optimizer's attack), or with `send_goal` the plain goal is sent and the run
    is recorded as `baseline`. At a later turn the conversation simply ends there.
    """

    reason: str
    raw: str = ""
    send_goal: bool = False


def as_user_turn(value: Any) -> UserTurn:
    if isinstance(value, UserTurn):
        return value
    if isinstance(value, str):
        return UserTurn(content=value)
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return UserTurn(content=value["content"], rewind=int(value.get("rewind") or 0))
    raise InvalidInjectionError(
        "a user turn must be a str, a UserTurn or {'content': str, 'rewind': int}, "
        f"got {type(value).__name__}"
    )


class ChatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_turns: int = Field(8, ge=1, le=100, description="User turns per run, at most")
    system_prompt: str | None = Field(None, description="Overrides the target's system prompt")


class ChatHarness(TargetHarness):
    """Any litellm chat model: the optimizer writes each user turn and reads each reply.

    A run is one conversation. Turn 0 defaults to the goal; each later turn happens only if the
    optimizer injects it, so single-turn optimizers simply do not answer turn 1.
    """

    name = "chat"
    Config = ChatConfig
    default_scope = Scope.of(SecurityDomain.USER_INPUT, read_only=[SecurityDomain.MODEL_OUTPUT])

    def __init__(
        self, target: TargetConfig, config: BaseModel, *, locked: Sequence[str] = ()
    ) -> None:
        super().__init__(target, config, locked=locked)
        self.user_turn = self.controllable(
            "user_turn", SecurityDomain.USER_INPUT, "the user's message"
        )
        self.reply = Observable(
            name="reply", domain=SecurityDomain.MODEL_OUTPUT, description="the model's answer"
        )

    @property
    def controllables(self) -> tuple[Controllable, ...]:
        return (self.user_turn,)

    @property
    def observables(self) -> tuple[Observable, ...]:
        return (self.reply,)

    async def run(self, hooks: RunHooks, goal: Goal) -> RunOutcome:
        config: ChatConfig = self.config  # type: ignore[assignment]  # this harness's config class
        system: list[ChatMessage] = (
            [SystemMessage(content=config.system_prompt)] if config.system_prompt else []
        )
        history: list[ChatMessage] = []
        usage = CallUsage()
        baseline = False
        sent: list[ChatMessage] = []
        response: str | None = None
        turns: list[dict[str, Any]] = []
        for turn in range(config.max_turns):
            default = goal.request if turn == 0 else None
            value = await hooks.pre_call(self.user_turn, TurnRequest(turn=turn, default=default))
            if isinstance(value, AttackerFailure):
                if turn > 0:  # the attacker's conversation so far stands; it ends here
                    turns.append({"turn": turn, "attacker_failure": value.reason})
                    break
                if not value.send_goal:
                    return attacker_failure_outcome(value, goal)
                baseline = True
                turns.append({"turn": turn, "attacker_failure": value.reason,
                              "sent_instead": "the goal, as baseline"})
                value = None
            if value is None and default is None:
                break
            step = UserTurn(content=default or "") if value is None else as_user_turn(value)
            if step.rewind:
                history = history[: max(0, len(history) - 2 * step.rewind)]
            sent = [*system, *history, UserMessage(content=step.content)]
            completion = await chat(self.target, sent)
            usage += completion
            turns.append(
                {
                    "turn": turn,
                    "rewind": step.rewind,
                    "user": step.content,
                    "reply": completion.text,
                    "error": completion.error,
                }
            )
            if completion.error is not None:
                return RunOutcome(
                    messages=sent,
                    response=None,
                    error=completion.error,
                    error_kind=completion.error_kind,
                    details={"turns": turns},
                    baseline=baseline,
                    **usage.fields(),
                )
            response = completion.text or ""
            history = [*history, UserMessage(content=step.content), AssistantMessage(content=response)]
            await hooks.observe(self.reply, response)
        return RunOutcome(messages=sent, response=response, details={"turns": turns},
                          baseline=baseline, **usage.fields())


def attacker_failure_outcome(failure: AttackerFailure, goal: Goal) -> RunOutcome:
    """A run whose attack the attacker failed to write: nothing sent, recorded as such (the
    stored prompt says so first, with the attacker's output, for whoever reads the export)."""
    note = f"(not sent: attacker failure: {failure.reason})"
    return RunOutcome(
        messages=[UserMessage(content=f"{note}\n{failure.raw}".strip())],
        response=None,
        error=f"attacker failure: {failure.reason}",
        error_kind=ATTACKER_FAILURE,
        details={"attacker_failure": failure.reason, "attacker_output": failure.raw[:2000],
                 "goal_id": goal.id},
        attacker_failure=failure.reason,
    )


_HARNESSES: dict[str, str] = {
    "chat": "optimizers.library.harness:ChatHarness",
    "agent": "optimizers.library.agent_harness:AgentHarness",
    "framework-agent": "optimizers.library.framework_harness:FrameworkAgentHarness",
}


class HarnessError(ValueError):
    """Unknown harness kind, a path that is not a TargetHarness, or invalid options."""


def harness_class(kind: str) -> type[TargetHarness]:
    path = _HARNESSES.get(kind, kind)
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise HarnessError(
            f"unknown target harness {kind!r}; use {sorted(_HARNESSES)} or 'module:Class'"
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise HarnessError(f"cannot load target harness {kind!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, TargetHarness)):
        raise HarnessError(f"{kind!r} is not a TargetHarness subclass")
    return cls


def build_harness(spec: HarnessSpec, target: TargetConfig) -> TargetHarness:
    """Instantiate the harness with validated options (pydantic errors name the bad field)."""
    cls = harness_class(spec.kind)
    config = cls.Config.model_validate(spec.options)
    harness = cls(target, config, locked=spec.locked)
    names = {c.name for c in harness.controllables}
    unknown = sorted(set(spec.locked) - names)
    if unknown:
        raise HarnessError(
            f"locked point(s) {unknown} are not controllables of {spec.kind!r}: {sorted(names)}"
        )
    return harness


def scope_for(spec: HarnessSpec, harness: TargetHarness) -> Scope:
    """The spec's scope where given, else the harness's default."""
    default = harness.default_scope
    writable = spec.scope if spec.scope is not None else sorted(default.domains)
    readable = spec.read_only if spec.read_only is not None else sorted(default.read_only)
    return Scope.of(*writable, read_only=readable)
