"""Judge validations: the latest measured agreement of each judge panel with human labels.

Why a table: `siegeflow judges validate` measures a panel once; every later run and report
that uses the same panel (same canonical key) cites that figure instead of claiming nothing.
Only the latest validation per panel is kept (a re-validation replaces it).

Mixed into ``SQLBackend``; relies on its ``engine``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from tracking.models import JudgeValidationRecord, utcnow
from tracking.redaction import redact, redact_text

COUNTS = ("tp", "fp", "tn", "fn")


class ValidationStoreMixin:
    """`save_validation` / `get_validation` (see module docstring)."""

    engine: Engine

    def save_validation(self, *, panel_key: str, panel: Mapping[str, Any], source: str,
                        labels_sha256: str, n: int, errors: int, accuracy: float | None,
                        kappa: float | None, figures: Mapping[str, Any],
                        counts: Mapping[str, int] | None = None, positive: str | None = None,
                        datasets: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Store (or replace) the validation of the panel `panel_key`. `counts`: the panel's
        pooled confusion counts (tp, fp, tn, fn) with `positive` its positive class;
        `datasets`: the same per labelled data set ({name, n, tp, fp, tn, fn, errors, ...})."""
        cells = {name: int(counts[name]) for name in COUNTS} if counts is not None else {}
        record = JudgeValidationRecord(
            panel_key=panel_key, panel=redact(dict(panel)), source=redact_text(source),
            labels_sha256=labels_sha256, n=n, errors=errors, accuracy=accuracy, kappa=kappa,
            figures=redact(dict(figures)), created_at=utcnow(), positive=positive,
            datasets=[redact(dict(d)) for d in datasets] if datasets is not None else None,
            **cells,
        )
        with Session(self.engine) as session:
            session.merge(record)
            session.commit()

    def get_validation(self, panel_key: str) -> JudgeValidationRecord | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(JudgeValidationRecord, panel_key)
