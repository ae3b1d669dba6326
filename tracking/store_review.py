"""Review of a run's verdicts by people: the drawn sample and the labels on it.

Why two tables: the sample is the run's (every reviewer labels the same drawn items, so their
agreement can be measured), a label is one person's; a drawn item without labels yet is still
part of the design. Labels live apart from `judgments` and never change a verdict. A person
relabelling an item replaces their own label (the latest answer is what they meant).

Mixed into ``SQLBackend``; relies on its ``engine``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tracking.models import utcnow
from tracking.models_review import ReviewDrawRecord, ReviewLabelRecord
from tracking.redaction import redact_text

LABELS = ("true", "false", "skip")


@dataclass(frozen=True, kw_only=True)
class NewDraw:
    """One item a draw adds to a run's review sample (see ``ReviewDrawRecord``)."""

    attempt_id: int
    result_id: str
    stratum: str
    stratum_size: int
    inclusion_prob: float
    draw_prob: float


class ReviewStoreMixin:
    """`add_review_draw`, `list_review_draws`, `save_review_label`, `list_review_labels`."""

    engine: Engine

    def add_review_draw(self, run_id: str, *, draw_id: str, seed: int,
                        items: Sequence[NewDraw]) -> list[ReviewDrawRecord]:
        """Append a draw's items after those already in the run's sample, in one transaction."""
        table = ReviewDrawRecord.__table__  # type: ignore[attr-defined]
        now = utcnow()
        with self.engine.begin() as conn:
            start = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(table.c.position), -1))
                .where(table.c.run_id == run_id)
            ).scalar_one() + 1
            if items:
                conn.execute(table.insert(), [
                    {"run_id": run_id, "attempt_id": item.attempt_id,
                     "result_id": item.result_id, "draw_id": draw_id, "seed": seed,
                     "position": start + k, "stratum": item.stratum,
                     "stratum_size": item.stratum_size, "inclusion_prob": item.inclusion_prob,
                     "draw_prob": item.draw_prob, "created_at": now}
                    for k, item in enumerate(items)
                ])
        return self.list_review_draws(run_id)[start:]

    def list_review_draws(self, run_id: str) -> list[ReviewDrawRecord]:
        """The run's sample in the order it was drawn."""
        query = (select(ReviewDrawRecord).where(ReviewDrawRecord.run_id == run_id)
                 .order_by(ReviewDrawRecord.position))  # type: ignore[arg-type]
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(query).all())

    def save_review_label(self, run_id: str, *, attempt_id: int, reviewer: str, label: str,
                          note: str | None = None) -> None:
        """Store (or replace) `reviewer`'s label on an item of the run's sample."""
        if label not in LABELS:
            raise ValueError(f"a review label is one of {', '.join(LABELS)}, not {label!r}")
        table = ReviewLabelRecord.__table__  # type: ignore[attr-defined]
        values = {"label": label, "note": redact_text(note) if note else None,
                  "created_at": utcnow()}
        dialect = pg_dialect if self.engine.dialect.name == "postgresql" else sqlite_dialect
        stmt = dialect.insert(table).values(run_id=run_id, attempt_id=attempt_id,
                                            reviewer=reviewer, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["run_id", "attempt_id", "reviewer"],
                                          set_=values)
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def list_review_labels(self, run_id: str) -> list[ReviewLabelRecord]:
        """Every reviewer's labels on the run's sample, oldest first."""
        query = (select(ReviewLabelRecord).where(ReviewLabelRecord.run_id == run_id)
                 .order_by(ReviewLabelRecord.created_at, ReviewLabelRecord.id))  # type: ignore[arg-type]
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(query).all())
