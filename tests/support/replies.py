"""What a responder of the test server returns (kept apart so responders need not import the server)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """One function call the fake model asks for; ``arguments`` is JSON text (as OpenAI sends it)."""

    name: str
    arguments: str = "{}"
    id: str | None = None

    def __post_init__(self) -> None:
        json.loads(self.arguments)  # a responder bug should surface here, not in a client


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A chat reply, or an HTTP error when ``status`` >= 400.

    ``headers`` go out as extra response headers (e.g. ``Retry-After``); ``finish_reason`` defaults
    to ``tool_calls`` when there are tool calls, else ``stop``.
    """

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    status: int = 200
    error: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    finish_reason: str | None = None


def as_reply(value: Any) -> Reply:
    """Accept the shorthand a responder may return: a ``Reply`` or plain text."""
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(text=value)
    raise TypeError(f"a responder must return Reply or str, got {type(value).__name__}")
