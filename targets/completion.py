"""The result of one target call: a value, never an exception, so a failing target is data."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

if TYPE_CHECKING:  # targets.messages imports ToolCall from here
    from collections.abc import Sequence

    from targets.messages import ChatMessage

ErrorKind = Literal[
    "rate_limit",  # 429
    "server",  # 5xx
    "timeout",
    "connection",
    "auth",  # 401/403, or the key's environment variable is not set
    "bad_request",  # 400/422, unsupported parameters, bad api_base
    "not_found",  # 404: unknown model or route
    "context_length",  # the prompt does not fit the model's context window
    "content_filter",  # the provider refused to process the request
    "invalid_response",  # 200 with a body that is not a chat completion
    "api_error",  # any other status
]

#: Kinds worth another attempt: the same request may well succeed later.
RETRYABLE_KINDS: frozenset[str] = frozenset({"rate_limit", "server", "timeout", "connection"})

BlockedBy = Literal["input", "output"]

#: Start of the marker a truncated answer ends with (`truncate_answer`); reports count it.
TRUNCATION_MARK = "[siegeflow: answer truncated"


def truncate_answer(text: str, limit: int) -> str:
    """Keep the first `limit` characters of an over-long answer and say so at the end.

    Why: a target can answer megabytes (a loop, a dump); stored in full in every attempt it
    bloats the store, the reports and every judge call. The marker keeps the cut visible.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n{TRUNCATION_MARK}: {limit:,} of {len(text):,} characters kept]"


def is_truncated(text: str | None) -> bool:
    return text is not None and TRUNCATION_MARK in text[-120:]


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is the JSON text exactly as the model wrote it.

    A target that ran the tool itself (an agent, an app reporting its tools, a Python target's
    `Reply`) also gives what the tool returned (``output``, the text the agent read) or the
    error it raised (``error``); a model's bare request for a call has neither.
    """

    name: str
    arguments: str
    id: str | None = None
    output: str | None = None
    error: str | None = None

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ``ValueError`` when the model wrote invalid JSON."""
        value = json.loads(self.arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError(f"tool arguments are not a JSON object: {self.arguments[:200]!r}")
        return value


class UsageFields(TypedDict):
    """`CallUsage`'s fields as keyword arguments (what a record built from a usage takes)."""

    cost_usd: float
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    attempts: int


@dataclass(frozen=True, kw_only=True)
class CallUsage:
    """What model calls cost, in one shape: a `Completion`, an agent run and an optimizer's
    target run all carry it (summed over their calls)."""

    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    attempts: int = 0

    def __add__(self, other: CallUsage) -> CallUsage:
        """Two usages summed: the usage of a run of several calls."""
        return CallUsage(
            cost_usd=self.cost_usd + other.cost_usd,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            latency_s=self.latency_s + other.latency_s,
            attempts=self.attempts + other.attempts,
        )

    def fields(self) -> UsageFields:
        return UsageFields(cost_usd=self.cost_usd, prompt_tokens=self.prompt_tokens,
                           completion_tokens=self.completion_tokens, latency_s=self.latency_s,
                           attempts=self.attempts)


@dataclass(frozen=True, kw_only=True)
class Completion(CallUsage):
    """One target call's outcome. A failed call has ``error``/``error_kind`` set and no text.

    ``blocked_by`` is set when a guardrail answered instead of (``"input"``) or over (``"output"``)
    the model: that answer is the target's answer, not an error.
    """

    text: str | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    blocked_by: BlockedBy | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class CompletionLike(Protocol):
    """The part of `Completion` that techniques and judges read (structural, so fakes fit)."""

    @property
    def text(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def cost_usd(self) -> float: ...


#: A model call bound to one model: messages in, a completion out (see `targets.chat_for_model`).
ChatFn = Callable[["Sequence[ChatMessage]"], Awaitable[CompletionLike]]
