"""Review of a run's verdicts: the drawn sample (with its design) and people's labels on it.

Revision ID: 0006_review_labels
Revises: 0005_validation_counts
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_review_labels"
down_revision: str | None = "0005_validation_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "review_draws",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("attempt_id", sa.Integer(), sa.ForeignKey("attempts.id"), nullable=False),
        sa.Column("result_id", sa.String(36), sa.ForeignKey("results.id"), nullable=False),
        sa.Column("draw_id", sa.String(36), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("stratum", sa.String(32), nullable=False),
        sa.Column("stratum_size", sa.Integer(), nullable=False),
        sa.Column("inclusion_prob", sa.Float(), nullable=False),
        sa.Column("draw_prob", sa.Float(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("run_id", "attempt_id", name="uq_review_draws_item"),
    )
    op.create_index("ix_review_draws_run_id", "review_draws", ["run_id"])
    op.create_table(
        "review_labels",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("attempt_id", sa.Integer(), sa.ForeignKey("attempts.id"), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("label", sa.String(8), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("run_id", "attempt_id", "reviewer", name="uq_review_labels_key"),
    )
    op.create_index("ix_review_labels_run_id", "review_labels", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_review_labels_run_id", table_name="review_labels")
    op.drop_table("review_labels")
    op.drop_index("ix_review_draws_run_id", table_name="review_draws")
    op.drop_table("review_draws")
