"""Attacker cost of a judgment: what decoding the answer for the judges cost (a translation back).

Revision ID: 0004_attacker_cost
Revises: 0003_judge_validations
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_attacker_cost"
down_revision: str | None = "0003_judge_validations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("judgments") as batch:
        batch.add_column(sa.Column("attacker_cost_usd", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("judgments") as batch:
        batch.drop_column("attacker_cost_usd")
