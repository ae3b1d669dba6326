"""The decoded answer of an attempt: what the judges read when a technique encodes the answer
(base64, a cipher, a translation), stored beside the raw answer so a reader sees it too.

NULL means "the same as the raw answer": every row stored before this revision, and every
answer a technique passes through unchanged.

Revision ID: 0008_decoded_answers
Revises: 0006_review_labels
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_decoded_answers"
down_revision: str | None = "0006_review_labels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("decoded_response", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("decoded_response")
