"""Typed inputs of the store's bulk methods (frozen and keyword-only: hard to misuse)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

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


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeCell:
    """One judge's verdict as a pipeline row carries it."""

    success: bool | None = None
    score: float | None = None
    error: str | None = None

    @classmethod
    def from_any(cls, cell: JudgeCell | Mapping[str, Any] | Any) -> JudgeCell:
        if isinstance(cell, JudgeCell):
            return cell
        if not isinstance(cell, Mapping):
            return cls(error=f"not a verdict: {type(cell).__name__}")
        return cls(success=cell.get("success"), score=cell.get("score"), error=cell.get("error"))

    def as_dict(self) -> dict[str, Any]:
        return {"success": self.success, "score": self.score, "error": self.error}


def majority(judges: Mapping[str, JudgeCell]) -> bool | None:
    """Majority of the judges' verdicts (a tie is not a success); None when none decided."""
    votes = [bool(c.success) for c in judges.values() if c.success is not None]
    if not votes:
        return None
    yes = sum(votes)
    return yes > len(votes) - yes


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineRow:
    """One attempt of a goal, as it flows from the store into goal finalization, summaries and
    reports (ARCHITECTURE.md, "Pipeline rows"). Built only by `reports.rows.rows_of`.

    The coordinator's spec-000 API speaks dicts: `from_dict` and `as_dict` convert at that
    edge (a dict without a `success` key is decided by the majority of its judges)."""

    goal: str = ""
    goal_index: int | None = None
    goal_id: str | None = None
    result_id: str | None = None
    category: str | None = None
    attempt_id: int | None = None
    technique: str = ""
    variant: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "attack"  # "attack", or "benign" for a control prompt (over-refusal alone)
    prompt: str = ""
    #: The whole stored prompt as OpenAI-form messages (a multi-turn conversation in full).
    conversation: Sequence[Mapping[str, Any]] = ()
    prompt_hash: str = ""
    response: str | None = None
    #: What the judges read when the technique decoded the answer; None: same as `response`.
    decoded: str | None = None
    error: str | None = None
    error_kind: str | None = None
    pending: bool = False
    judges: Mapping[str, JudgeCell] = field(default_factory=dict)
    success: bool | None = None
    score: float | None = None
    cost_usd: float = 0.0

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> PipelineRow:
        """A row given as a spec-000 dict (missing keys take their defaults; other keys are
        the caller's and are ignored)."""
        raw = row.get("judges")
        judges = (
            {str(k): JudgeCell.from_any(v) for k, v in raw.items()}
            if isinstance(raw, Mapping) else {}
        )
        if "success" in row:
            success = None if row["success"] is None else bool(row["success"])
        else:
            success = majority(judges)
        index, score, meta = row.get("goal_index"), row.get("score"), row.get("meta")
        return cls(
            goal=str(row.get("goal") or ""),
            goal_index=int(index) if index is not None else None,
            goal_id=_str_or_none(row.get("goal_id")),
            result_id=_str_or_none(row.get("result_id")),
            category=row.get("category"),
            attempt_id=row.get("attempt_id"),
            technique=str(row.get("technique") or ""),
            variant=str(row.get("variant") or ""),
            meta=meta if isinstance(meta, Mapping) else {},
            kind=str(row.get("kind") or "attack"),
            prompt=str(row.get("prompt") or ""),
            conversation=_messages(row.get("conversation")),
            prompt_hash=str(row.get("prompt_hash") or ""),
            response=row.get("response"),
            decoded=row.get("decoded"),
            error=row.get("error") or None,
            error_kind=row.get("error_kind"),
            pending=bool(row.get("pending")),
            judges=judges,
            success=success,
            score=float(score) if score is not None else None,
            cost_usd=float(row.get("cost_usd") or 0.0),
        )

    @classmethod
    def of(cls, row: PipelineRow | Mapping[str, Any]) -> PipelineRow:
        return row if isinstance(row, PipelineRow) else cls.from_dict(row)

    @classmethod
    def of_values(cls, values: Sequence[Any]) -> PipelineRow:
        """A row from the value of every field, in declaration order (`ROW_FIELDS`), for code
        that makes rows by the hundred thousand (`reports.rows`, the end of a big run): the
        frozen dataclass's own `__init__` (keyword arguments, an `object.__setattr__` per
        field) was over half a row's cost there. No defaults, no conversion: all fields."""
        if len(values) != len(_SETTERS):
            raise TypeError(f"PipelineRow.of_values: {len(values)} values for {len(_SETTERS)} fields")
        row = object.__new__(cls)
        for put, value in zip(_SETTERS, values, strict=True):
            put(row, value)
        return row

    @property
    def label(self) -> str:
        """``technique/variant`` as reports name the attempt's attack."""
        return "/".join(x for x in (self.technique, self.variant) if x)

    def as_dict(self) -> dict[str, Any]:
        """The spec-000 dict form (what a custom scorer and `siegeflow export` see)."""
        out = {name: getattr(self, name) for name in _FIELDS}
        out["meta"] = dict(self.meta)
        out["conversation"] = [dict(m) for m in self.conversation]
        out["judges"] = {name: cell.as_dict() for name, cell in self.judges.items()}
        return out


def _messages(value: Any) -> tuple[Mapping[str, Any], ...]:
    """Stored prompt messages (dicts in OpenAI form); anything else is no conversation."""
    if not isinstance(value, list | tuple):
        return ()
    return tuple(m for m in value if isinstance(m, Mapping))


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_FIELDS = tuple(f.name for f in fields(PipelineRow))
#: `PipelineRow`'s fields in declaration order: what `PipelineRow.of_values` takes.
ROW_FIELDS = _FIELDS
#: Each field's slot setter, in that order (what the dataclass's `__init__` ends up calling).
_SETTERS: tuple[Callable[[PipelineRow, Any], None], ...] = tuple(
    getattr(PipelineRow, name).__set__ for name in _FIELDS)
