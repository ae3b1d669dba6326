"""Initial tracking schema: runs, results, traces.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("attack_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("target_description", sa.Text(), nullable=True),
        sa.Column("config", JSON, nullable=False),
        sa.Column("summary", JSON, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_runs_attack_type", "runs", ["attack_type"])

    op.create_table(
        "results",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("goal", sa.Text(), nullable=False),
        sa.Column("goal_index", sa.Integer(), nullable=False),
        sa.Column("goal_id", sa.String(255), nullable=True),
        sa.Column("category", sa.String(128), nullable=True),
        sa.Column("evaluation_status", sa.String(32), nullable=False),
        sa.Column("evaluation_notes", sa.Text(), nullable=True),
        sa.Column("metrics", JSON, nullable=True),
        sa.Column("goal_metadata", JSON, nullable=True),
        sa.Column("agent_specific_data", JSON, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("evaluated_at", TS, nullable=True),
        sa.UniqueConstraint("run_id", "goal_index", name="uq_results_run_goal"),
    )

    op.create_table(
        "traces",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("result_id", sa.String(36), sa.ForeignKey("results.id"), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("step_name", sa.String(200), nullable=False),
        sa.Column("step_type", sa.String(64), nullable=False),
        sa.Column("content", JSON, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("result_id", "sequence", name="uq_traces_result_sequence"),
    )
    op.create_index("ix_traces_run_id", "traces", ["run_id"])
    op.create_index(
        "uq_traces_run_sequence",
        "traces",
        ["run_id", "sequence"],
        unique=True,
        sqlite_where=sa.text("result_id IS NULL"),
        postgresql_where=sa.text("result_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_traces_run_sequence", table_name="traces")
    op.drop_index("ix_traces_run_id", table_name="traces")
    op.drop_table("traces")
    op.drop_table("results")
    op.drop_index("ix_runs_attack_type", table_name="runs")
    op.drop_table("runs")
