"""Pipeline idempotency (attempts, judgments) and run bookkeeping columns.

Adds to runs: prefect_flow_run_id, parameters, cost_usd, started_at, finished_at,
heartbeat_at (stale-run detection). Creates attempts (one per run/result/prompt hash) and
judgments (one per attempt/judge), which let a retried task or a resumed run skip work
already recorded.

Revision ID: 0002_pipeline_idempotency
Revises: 0001_initial
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_pipeline_idempotency"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("parameters", JSON, nullable=True))
        batch.add_column(sa.Column("prefect_flow_run_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("started_at", TS, nullable=True))
        batch.add_column(sa.Column("finished_at", TS, nullable=True))
        batch.add_column(sa.Column("heartbeat_at", TS, nullable=True))
    op.create_index("ix_runs_prefect_flow_run_id", "runs", ["prefect_flow_run_id"])
    op.create_index("ix_runs_status_heartbeat", "runs", ["status", "heartbeat_at"])

    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("result_id", sa.String(36), sa.ForeignKey("results.id"), nullable=False),
        sa.Column("prompt_hash", sa.String(128), nullable=False),
        sa.Column("technique", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("prompt", JSON, nullable=True),
        sa.Column("meta", JSON, nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("latency_s", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("completed_at", TS, nullable=True),
        sa.UniqueConstraint("run_id", "result_id", "prompt_hash", name="uq_attempts_key"),
    )

    op.create_table(
        "judgments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("attempt_id", sa.Integer(), sa.ForeignKey("attempts.id"), nullable=False),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("judge", sa.String(64), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("attempt_id", "judge", name="uq_judgments_key"),
    )
    op.create_index("ix_judgments_run_id", "judgments", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_judgments_run_id", table_name="judgments")
    op.drop_table("judgments")
    op.drop_table("attempts")
    op.drop_index("ix_runs_status_heartbeat", table_name="runs")
    op.drop_index("ix_runs_prefect_flow_run_id", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        for column in (
            "heartbeat_at",
            "finished_at",
            "started_at",
            "cost_usd",
            "prefect_flow_run_id",
            "parameters",
        ):
            batch.drop_column(column)
