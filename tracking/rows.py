"""Typed inputs of the store's bulk methods (frozen and keyword-only: hard to misuse)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from tracking.enums import EvaluationStatusEnum


@dataclass(frozen=True, kw_only=True)
class NewResult:
    """A goal to record as a result row of a run."""

    goal: str
    goal_index: int
    goal_id: str | None = None
    category: str | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class ResultUpdate:
    """The final evaluation of one result row."""

    result_id: str
    evaluation_status: EvaluationStatusEnum
    evaluation_notes: str | None = None
    metrics: Mapping[str, Any] | None = None
    agent_specific_data: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class NewAttempt:
    """An attack prompt to send for a goal; ``prompt_hash`` is its idempotency key."""

    result_id: str
    prompt_hash: str
    technique: str = ""
    variant: str = ""
    prompt: list[Any] | Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None

    @classmethod
    def from_any(cls, row: NewAttempt | Mapping[str, Any]) -> NewAttempt:
        """Accept a ``NewAttempt`` or a pipeline row dict (``result_id``, ``prompt_hash``, ...)."""
        if isinstance(row, NewAttempt):
            return row
        return cls(
            result_id=str(row["result_id"]),
            prompt_hash=str(row["prompt_hash"]),
            technique=str(row.get("technique") or ""),
            variant=str(row.get("variant") or ""),
            prompt=row.get("prompt"),
            metadata=row.get("metadata"),
        )


class JudgeCell(TypedDict):
    """One judge's verdict as a pipeline row carries it."""

    success: bool | None
    score: float | None
    error: str | None


class PipelineRow(TypedDict, total=False):
    """One attempt of a goal, as it flows from the store into goal finalization, summaries and
    reports (ARCHITECTURE.md, "Pipeline rows"). Built only by `reports.rows.build_rows`; a
    plain dict at run time, so the coordinator's dict API (spec 000) takes it unchanged."""

    goal: str
    goal_index: int
    goal_id: str | None
    result_id: str
    category: str | None
    attempt_id: int
    technique: str
    variant: str
    meta: dict[str, Any]
    kind: str  # "attack", or "benign" for a control prompt (decided by over-refusal alone)
    prompt: str
    prompt_hash: str
    response: str | None
    error: str | None
    error_kind: str | None
    pending: bool
    judges: dict[str, JudgeCell]
    success: bool | None
    score: float | None
    cost_usd: float
