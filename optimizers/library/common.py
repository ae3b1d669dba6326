"""Helpers the shipped optimizers share: config base, attacker output parsing, feedback.

Attacker models wrap their JSON in prose or code fences, escape badly, or forget it entirely;
`parse_attack_json` takes the first JSON object carrying the wanted key and falls back to a
string-field regex, so one sloppy answer does not end a run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from optimizers.events import (
    ControllablePostCallEvent,
    ControllablePreCallEvent,
    Evaluation,
    ObservableEvent,
)
from optimizers.trajectory import ReadableTrajectory

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


class OptimizerConfig(BaseModel):
    """Base of shipped optimizer configs: unknown options are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def message_text(response: Any) -> str:
    """The text of a litellm ModelResponse's first choice ('' when it has none)."""
    try:
        return str(response.choices[0].message.content or "")
    except (AttributeError, IndexError):
        return ""


def _objects(text: str) -> Iterable[str]:
    """Every balanced {...} substring, outermost first, honouring JSON strings."""
    for start, char in enumerate(text):
        if char != "{":
            continue
        depth, in_string, escaped = 0, False, False
        for end in range(start, len(text)):
            c = text[end]
            if in_string:
                if escaped:
                    escaped = False
                elif c == "\\":
                    escaped = True
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    yield text[start : end + 1]
                    break


def parse_attack_json(text: str, key: str = "prompt") -> dict[str, Any] | None:
    """The first JSON object in `text` with a non-empty string `key`, or None.

    Tries, in order: the whole text, fenced blocks, every balanced object, then a regex for
    `"key": "..."` (for JSON with a broken tail).
    """
    if not text:
        return None
    candidates = [text.strip(), *(m.strip() for m in _FENCE.findall(text)), *_objects(text)]
    for candidate in candidates:
        try:
            value = json.loads(candidate, strict=False)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and isinstance(value.get(key), str) and value[key].strip():
            return value
    found = re.search(rf'"{re.escape(key)}"\s*:\s*"((?:[^"\\]|\\.)*)"', text, re.DOTALL)
    if found:
        try:
            value = json.loads(f'"{found.group(1)}"', strict=False)
        except json.JSONDecodeError:
            value = found.group(1)
        if value.strip():
            return {key: value}
    return None


def rating(evaluation: Any) -> int:
    """A PAIR-style 1-10 rating from a run's evaluation (success counts as 10)."""
    if not isinstance(evaluation, Evaluation):
        return 1
    if evaluation.success is True:
        return 10
    if evaluation.score is None:
        return 1
    return max(1, min(10, 1 + round(float(evaluation.score) * 9)))


def succeeded(evaluation: Any) -> bool:
    return isinstance(evaluation, Evaluation) and evaluation.success is True


def observed(trajectory: ReadableTrajectory | None, name: str | None = None) -> list[Any]:
    """Values of the observable events in a (scoped) trajectory, optionally of one point."""
    if trajectory is None:
        return []
    return [
        e.event.value
        for e in trajectory.entries
        if isinstance(e.event, ObservableEvent)
        and (name is None or e.event.observable.name == name)
    ]


def injected(trajectory: ReadableTrajectory | None) -> list[Any]:
    """Values the optimizer injected during a run, in order."""
    if trajectory is None:
        return []
    return [
        e.injected_value
        for e in trajectory.entries
        if e.injected and isinstance(e.event, ControllablePreCallEvent | ControllablePostCallEvent)
    ]


def last_reply(trajectory: ReadableTrajectory | None, name: str = "reply") -> str | None:
    replies = observed(trajectory, name)
    return str(replies[-1]) if replies else None


def clip(text: str | None, limit: int = 2000) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 3] + "..."
