"""What every judge shares: the `Verdict` value, the `Judge` base class, and `ModelJudge`, which
owns the call-parse-retry loop so each model judge only writes a prompt and a parser."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Re-exported (`x as x`): judges take their model call from here.
from targets.chat import chat_for_model as chat_for_model
from targets.completion import ChatFn as ChatFn
from targets.completion import CompletionLike as CompletionLike
from targets.messages import ChatMessage, UserMessage, as_messages


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """One judge's decision on one response.

    `success` is None exactly when the judge could not decide; then `error` says why (model
    call failed, or its output stayed unparseable). An error is never a verdict of "no".
    """

    judge: str
    success: bool | None
    score: float | None
    raw: str | None
    error: str | None
    cost_usd: float = 0.0
    #: Paid to an attacker model to make the answer judgeable (a translation back into English):
    #: part of the run's spend, reported as attacker cost, never as this judge's.
    attacker_cost_usd: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.success is not None


class JudgeConfig(BaseModel):
    """Base for judge configs: unknown options are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelJudgeConfig(JudgeConfig):
    model: Any = Field(
        default=None,
        description="TargetConfig-compatible judge model (model, api_base, api_key_env, ...).",
    )
    parse_retries: int = Field(
        default=2, ge=0, le=10,
        description="Extra calls when the judge's answer cannot be parsed, before giving up.",
    )

    @field_validator("model", mode="before")
    @classmethod
    def _model_like(cls, value: Any) -> Any:
        if value is None or isinstance(value, BaseModel):
            return value
        if isinstance(value, Mapping):
            return dict(value)
        raise ValueError("must be a mapping of TargetConfig fields (model, api_base, ...)")


class JudgeParseError(ValueError):
    """A judge model's answer does not follow the requested format."""


C = TypeVar("C", bound=JudgeConfig)


class Judge(ABC, Generic[C]):
    """Decides whether a response achieves a goal. Registered with `@judge("name")`; the first
    docstring line is the description shown by `siegeflow judges`."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[JudgeConfig]] = JudgeConfig
    needs_model: ClassVar[bool] = False
    #: What a "success" of this judge means: "harm" (the response carries out the goal) or
    #: "non-refusal" (it merely does not refuse); headlines warn on refusal-only panels.
    measures: ClassVar[str] = "harm"
    #: True when `evaluate` takes `context=` (a contextual goal's context, apart from its text).
    takes_context: bool = False

    def __init__(self, config: C | None = None, *, label: str | None = None) -> None:
        self.config: C = config if config is not None else self.Config()  # type: ignore[assignment]  # Config is C
        self.label = label or self.name

    @abstractmethod
    async def evaluate(self, goal: str, prompt: str, response: str) -> Verdict:
        """Judge `response` (already decoded) against the goal text."""


MC = TypeVar("MC", bound=ModelJudgeConfig)


class ModelJudge(Judge[MC]):
    """A judge that asks a model; subclasses provide `messages` and `parse`.

    A failed model call becomes `Verdict(error="model: ...")`. An answer that does not parse is
    asked again up to `parse_retries` times, then recorded as `Verdict(error="unparseable: ...")`.
    """

    needs_model = True

    def __init__(self, config: MC | None = None, *, label: str | None = None,
                 chat: ChatFn | None = None) -> None:
        super().__init__(config, label=label)
        if chat is None and self.config.model is None:
            raise ValueError(
                f"judge {self.name!r} needs a model: set its 'model' option to a TargetConfig "
                "mapping, e.g. {'model': 'openai/gpt-4o-mini'}"
            )
        self._chat = chat

    @abstractmethod
    def messages(self, goal: str, prompt: str, response: str) -> list[ChatMessage]:
        """The judge prompt (first line: the judge's `[SIEGEFLOW-JUDGE:...]` marker)."""

    @abstractmethod
    def parse(self, text: str) -> tuple[bool, float]:
        """`(success, score in [0, 1])` from the model's answer; raises JudgeParseError."""

    async def evaluate(self, goal: str, prompt: str, response: str) -> Verdict:
        return await self._ask(self.messages(goal, prompt, response))

    def _model_call(self) -> ChatFn:
        """The model call used when none was injected (`targets.chat` on the `model` option)."""
        return chat_for_model(self.config.model)

    async def _ask(self, messages: Sequence[ChatMessage | Mapping[str, Any]]) -> Verdict:
        """Call, parse, re-ask while unparseable; a failed call or a last unparseable answer is
        a judge error. (A plugin's `messages()` may give the OpenAI form: typed here.)"""
        typed = as_messages(messages)
        if self._chat is None:
            self._chat = self._model_call()
        cost, problem, text = 0.0, "", None
        for _ in range(self.config.parse_retries + 1):
            completion = await self._chat(typed)
            cost += completion.cost_usd or 0.0
            text = completion.text
            if completion.error:
                return self._verdict(None, None, text, f"model: {completion.error}", cost)
            try:
                success, score = self.parse(text or "")
            except JudgeParseError as exc:
                problem = str(exc)
                continue
            return self._verdict(success, score, text, None, cost)
        attempts = self.config.parse_retries + 1
        return self._verdict(
            None, None, text, f"unparseable: {problem} ({attempts} attempt(s))", cost
        )

    def _verdict(self, success: bool | None, score: float | None, raw: str | None,
                 error: str | None, cost: float) -> Verdict:
        return Verdict(judge=self.label, success=success, score=score, raw=raw, error=error,
                       cost_usd=cost)


def snippet(text: str, limit: int = 80) -> str:
    """A short, single-line excerpt of a model answer for error messages."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


def fill(template: str, goal: str, response: str) -> list[ChatMessage]:
    """A one-message judge prompt, filled in one pass so braces in goals/responses are inert."""
    values = {"goal": goal.strip(), "response": response}
    content = re.sub(r"\{(goal|response)\}", lambda m: values[m.group(1)], template)
    return [UserMessage(content=content)]
