"""Trajectories as JSON for traces: what was injected where, and what was observed.

Event payloads are arbitrary Python values (dataclasses, pydantic models, strings); traces need
JSON. Values are converted structurally and long strings clipped so one huge tool output cannot
bloat the store.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from optimizers.events import (
    ControllablePostCallEvent,
    ControllablePreCallEvent,
    Evaluation,
    ObservableEvent,
)
from optimizers.trajectory import ReadableTrajectory

MAX_TEXT = 4000


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of `value` (unknown objects become their repr)."""
    if depth > 8:
        return repr(value)[:200]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + f"... [{len(value)} chars]"
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="json"), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: jsonable(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth + 1) for v in value]
    return repr(value)[:500]


def evaluation_record(evaluation: Any) -> Any:
    if isinstance(evaluation, Evaluation):
        return {
            "success": evaluation.success,
            "score": evaluation.score,
            "feedback": evaluation.feedback,
            "details": jsonable(evaluation.details),
        }
    return jsonable(evaluation)


def trajectory_record(trajectory: ReadableTrajectory) -> list[dict[str, Any]]:
    """One dict per entry: the point, its domain, the original value and any injection."""
    rows: list[dict[str, Any]] = []
    for entry in trajectory.entries:
        event = entry.event
        if isinstance(event, ControllablePreCallEvent | ControllablePostCallEvent):
            row: dict[str, Any] = {
                "kind": "pre_call" if isinstance(event, ControllablePreCallEvent) else "post_call",
                "point": event.controllable.name,
                "domain": event.controllable.domain,
                "request": jsonable(event.request),
                "injected": entry.injected,
            }
            if isinstance(event, ControllablePostCallEvent):
                row["response"] = jsonable(event.response)
            if entry.injected:
                row["value"] = jsonable(entry.injected_value)
                rationale = getattr(entry.response, "rationale", None)
                if rationale:
                    row["rationale"] = jsonable(rationale)
        elif isinstance(event, ObservableEvent):
            row = {
                "kind": "observe",
                "point": event.observable.name,
                "domain": event.observable.domain,
                "value": jsonable(event.value),
            }
        else:
            continue
        rows.append(row)
    return rows
