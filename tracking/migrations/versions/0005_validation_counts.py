"""Judge validations keep their confusion counts (pooled and per labelled data set), so a run
can correct its ASR for the judge's error (Rogan–Gladen needs counts, not rates).

Revision ID: 0005_validation_counts
Revises: 0004_attacker_cost
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_validation_counts"
down_revision: str | None = "0004_attacker_cost"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
COUNTS = ("tp", "fp", "tn", "fn")


def upgrade() -> None:
    with op.batch_alter_table("judge_validations") as batch:
        batch.add_column(sa.Column("positive", sa.String(16), nullable=True))
        for name in COUNTS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch.add_column(sa.Column("datasets", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("judge_validations") as batch:
        batch.drop_column("datasets")
        for name in reversed(COUNTS):
            batch.drop_column(name)
        batch.drop_column("positive")
