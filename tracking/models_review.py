"""Tables of a person's review of a run's verdicts (`tracking.store_review`): apart from
`models.py` so the review's schema is one module, registered with the same metadata (Alembic
revision 0006)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tracking.models import UTCDateTime, utcnow


class ReviewDrawRecord(SQLModel, table=True):
    """One item of a run's review sample: a goal's best attempt, drawn by the tool (never by a
    person) within the stratum of the panel's verdict. The design fields are what the
    prediction-powered ASR weighs the labels by (docs/review.md)."""

    __tablename__ = "review_draws"
    __table_args__ = (sa.UniqueConstraint("run_id", "attempt_id", name="uq_review_draws_item"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id", max_length=36, index=True)
    attempt_id: int = Field(foreign_key="attempts.id")
    result_id: str = Field(foreign_key="results.id", max_length=36)
    draw_id: str = Field(max_length=36)  # one `siegeflow review` call that added items
    seed: int = Field(sa_type=sa.BigInteger)
    position: int  # order within the run's sample (what the reviewer sees as k of N)
    stratum: str = Field(max_length=32)  # the panel's verdict on the goal: broken | held
    stratum_size: int  # goals in that stratum when drawn
    inclusion_prob: float  # P(goal in the sample so far | stratum), after this draw
    draw_prob: float  # P(drawn in this draw | not drawn before)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ReviewLabelRecord(SQLModel, table=True):
    """A person's label on one drawn item; kept apart from the judges' verdicts, which it never
    changes. One row per (item, reviewer): relabelling replaces that reviewer's own label."""

    __tablename__ = "review_labels"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "attempt_id", "reviewer", name="uq_review_labels_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id", max_length=36, index=True)
    attempt_id: int = Field(foreign_key="attempts.id")
    reviewer: str = Field(max_length=128)
    label: str = Field(max_length=8)  # true | false | skip
    note: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
