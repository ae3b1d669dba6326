"""SQLModel tables of the tracking store (the schema Alembic manages under ``migrations/``).

Why these shapes:

* Run and result ids are client-generated UUID strings, so a batch of results is one bulk
  insert and ids exist before the row does (useful for resume and for the trace queue).
* Trace ids are database integers: traces are the high-volume table and are bulk-inserted by
  a background writer; ``(result_id, sequence)`` (goal traces) and ``(run_id, sequence)``
  for run-level traces (``result_id IS NULL``) are unique, so ordering is part of the data.
* Statuses are stored as plain strings (no native PostgreSQL enum to migrate) and read back
  as the enum members; timestamps are always timezone-aware UTC on both backends.
* JSON columns are JSONB on PostgreSQL and JSON text on SQLite.

The attribute for free-form goal metadata is ``goal_metadata`` and for attempts ``meta``:
``metadata`` is reserved by SQLAlchemy's declarative base.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from tracking.enums import EvaluationStatusEnum, StatusEnum

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table of a table model, for bulk statements: SQLModel's metaclass sets
    `__table__`, which its type stubs do not declare."""
    table = model.__table__  # type: ignore[attr-defined]  # set by the metaclass, undeclared
    if not isinstance(table, sa.Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StrEnumType(sa.types.TypeDecorator[Enum]):
    """A ``str`` enum stored as VARCHAR and read back as the enum member."""

    impl = sa.String(32)
    cache_ok = True

    def __init__(self, enum_cls: type[Enum]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        return str(self.enum_cls(value).value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Enum | None:
        return None if value is None else self.enum_cls(value)


class RunRecord(SQLModel, table=True):
    """One attack execution."""

    __tablename__ = "runs"
    __table_args__ = (sa.Index("ix_runs_status_heartbeat", "status", "heartbeat_at"),)

    id: str = Field(primary_key=True, max_length=36)
    attack_type: str = Field(max_length=64, index=True)
    status: StatusEnum = Field(default=StatusEnum.PENDING, sa_type=StrEnumType(StatusEnum))
    target_description: str | None = Field(default=None, sa_type=sa.Text)
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    parameters: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    summary: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    prefect_flow_run_id: str | None = Field(default=None, max_length=64, index=True)
    cost_usd: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ResultRecord(SQLModel, table=True):
    """One goal of a run (goals are identified by index and id, never by their text)."""

    __tablename__ = "results"
    __table_args__ = (sa.UniqueConstraint("run_id", "goal_index", name="uq_results_run_goal"),)

    id: str = Field(primary_key=True, max_length=36)
    run_id: str = Field(foreign_key="runs.id", max_length=36)
    goal: str = Field(sa_type=sa.Text)
    goal_index: int
    goal_id: str | None = Field(default=None, max_length=255)
    category: str | None = Field(default=None, max_length=128)
    evaluation_status: EvaluationStatusEnum = Field(
        default=EvaluationStatusEnum.NOT_EVALUATED, sa_type=StrEnumType(EvaluationStatusEnum)
    )
    evaluation_notes: str | None = Field(default=None, sa_type=sa.Text)
    metrics: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    goal_metadata: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    agent_specific_data: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    evaluated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TraceRecord(SQLModel, table=True):
    """One ordered event of a goal (``result_id`` set) or of the run itself (pipeline steps)."""

    __tablename__ = "traces"
    __table_args__ = (
        sa.UniqueConstraint("result_id", "sequence", name="uq_traces_result_sequence"),
        sa.Index(
            "uq_traces_run_sequence",
            "run_id",
            "sequence",
            unique=True,
            sqlite_where=sa.text("result_id IS NULL"),
            postgresql_where=sa.text("result_id IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id", max_length=36, index=True)
    result_id: str | None = Field(default=None, foreign_key="results.id", max_length=36)
    sequence: int
    step_name: str = Field(max_length=200)
    step_type: str = Field(max_length=64)
    content: dict[str, Any] | list[Any] | None = Field(default=None, sa_type=JSONType)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AttemptRecord(SQLModel, table=True):
    """One attack prompt sent (or to be sent) for a goal: the completion idempotency key."""

    __tablename__ = "attempts"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "result_id", "prompt_hash", name="uq_attempts_key"),
        # The steps' keyset-paged reads (0009): a run's attempts in id order, and its pending
        # ones (`completed_at IS NULL`) in id order, without sorting or scanning the rest.
        sa.Index("ix_attempts_run_id", "run_id", "id"),
        sa.Index("ix_attempts_run_pending", "run_id", "completed_at", "id"),
        # The end of a run reads one goal's attempts at a time, in id order (0009).
        sa.Index("ix_attempts_result_id", "result_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id", max_length=36)
    result_id: str = Field(foreign_key="results.id", max_length=36)
    prompt_hash: str = Field(max_length=128)
    technique: str = Field(default="", max_length=64)
    variant: str = Field(default="", max_length=128)
    prompt: list[Any] | dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    meta: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    response: str | None = Field(default=None, sa_type=sa.Text)
    # What the judges read when the technique decoded the answer (0008); None: same as raw.
    decoded_response: str | None = Field(default=None, sa_type=sa.Text)
    error: str | None = Field(default=None, sa_type=sa.Text)
    error_kind: str | None = Field(default=None, max_length=64)
    cost_usd: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    attempts: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class JudgmentRecord(SQLModel, table=True):
    """One judge's verdict on one attempt: the judgment idempotency key."""

    __tablename__ = "judgments"
    __table_args__ = (
        sa.UniqueConstraint("attempt_id", "judge", name="uq_judgments_key"),
        # A run's verdicts in attempt order without sorting them (the streamed spend, 0009).
        sa.Index("ix_judgments_run_attempt", "run_id", "attempt_id", "judge"),
    )

    id: int | None = Field(default=None, primary_key=True)
    attempt_id: int = Field(foreign_key="attempts.id")
    run_id: str = Field(foreign_key="runs.id", max_length=36, index=True)
    judge: str = Field(max_length=64)
    success: bool | None = None
    score: float | None = None
    raw: str | None = Field(default=None, sa_type=sa.Text)
    error: str | None = Field(default=None, sa_type=sa.Text)
    cost_usd: float | None = None
    attacker_cost_usd: float | None = None  # decoding the answer (a translation back)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class JudgeValidationRecord(SQLModel, table=True):
    """The latest validation of a judge panel against human labels, keyed by the panel's
    canonical key (judge specs + rule), so runs and reports using that panel can cite it."""

    __tablename__ = "judge_validations"

    panel_key: str = Field(primary_key=True, max_length=64)  # sha256 prefix of the canonical key
    panel: dict[str, Any] = Field(sa_type=JSONType)  # the canonical key itself, parsed
    source: str = Field(sa_type=sa.Text)
    labels_sha256: str = Field(max_length=64)
    n: int
    errors: int
    accuracy: float | None = None
    kappa: float | None = None
    figures: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The panel's pooled confusion counts (a corrected ASR needs counts, not rates); None in
    # validations stored before 0005. `positive`: the judge's positive class ("success",
    # "refusal"); `datasets`: the same counts per labelled data set (stratum).
    positive: str | None = Field(default=None, max_length=16)
    tp: int | None = None
    fp: int | None = None
    tn: int | None = None
    fn: int | None = None
    datasets: list[dict[str, Any]] | None = Field(default=None, sa_type=JSONType)
