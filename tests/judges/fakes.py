"""Test doubles for the judge model call (structurally a `targets.Completion`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class FakeCompletion:
    text: str | None = None
    error: str | None = None
    cost_usd: float = 0.0


@dataclass
class ScriptedChat:
    """Returns the scripted completions in order (the last one repeats) and records calls."""

    replies: list[FakeCompletion]
    calls: list[list[dict[str, Any]]] = field(default_factory=list)

    async def __call__(self, messages: list[dict[str, Any]]) -> FakeCompletion:
        self.calls.append(messages)
        return self.replies[min(len(self.calls), len(self.replies)) - 1]


def replies(*texts: str, cost: float = 0.0) -> ScriptedChat:
    return ScriptedChat([FakeCompletion(text=t, cost_usd=cost) for t in texts])
