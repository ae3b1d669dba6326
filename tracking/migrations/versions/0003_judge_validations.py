"""Judge validations: the latest agreement of each judge panel with human labels.

Revision ID: 0003_judge_validations
Revises: 0002_pipeline_idempotency
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_judge_validations"
down_revision: str | None = "0002_pipeline_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "judge_validations",
        sa.Column("panel_key", sa.String(64), primary_key=True),
        sa.Column("panel", JSON, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("labels_sha256", sa.String(64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("kappa", sa.Float(), nullable=True),
        sa.Column("figures", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("judge_validations")
