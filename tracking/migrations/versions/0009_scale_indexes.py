"""Indexes for the steps' streamed reads (issue 23: memory flat in a run's size).

The steps read a run's attempts a page at a time by id (`id > last ORDER BY id LIMIT n`):
every attempt in id order (Evaluation, Best-of-N's resume), and the pending ones in id order
(Completions). Without an index led by `run_id` and ending in `id`, each page would sort the
run's rows again (quadratic in a run's size on PostgreSQL). Verdicts are looked up per page of
attempts by `(attempt_id, judge)`: the unique key `uq_judgments_key` already answers that, and
`(run_id, result_id, prompt_hash)` answers "which goals have attempts". The end of a run reads
one goal's attempts at a time in id order (`result_id, id`) and the run's verdicts in attempt
order (`run_id, attempt_id, judge`): measured on a 1M-attempt SQLite store, the finish went from
180 s to 116 s with both.

Revision ID: 0009_scale_indexes
Revises: 0008_decoded_answers
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009_scale_indexes"
down_revision: str | None = "0008_decoded_answers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_attempts_run_id", "attempts", ["run_id", "id"])
    op.create_index("ix_attempts_run_pending", "attempts", ["run_id", "completed_at", "id"])
    op.create_index("ix_attempts_result_id", "attempts", ["result_id", "id"])
    op.create_index("ix_judgments_run_attempt", "judgments", ["run_id", "attempt_id", "judge"])


def downgrade() -> None:
    op.drop_index("ix_judgments_run_attempt", table_name="judgments")
    op.drop_index("ix_attempts_result_id", table_name="attempts")
    op.drop_index("ix_attempts_run_pending", table_name="attempts")
    op.drop_index("ix_attempts_run_id", table_name="attempts")
