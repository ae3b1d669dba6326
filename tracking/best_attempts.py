"""Each goal's best attempt, stored at the end of a run (issue 23): `runs show` and the
terminal's goal table then read O(goals) attempts by id instead of every attempt of a goal.

The id goes in the result's `metrics` JSON under `BEST_ATTEMPT` (None: the goal had no
attempt). A result without the key (a run finished before this, or re-opened by a resume) is
read the old way (`reports.rows.best_rows_of` falls back goal by goal).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tracking.models import ResultRecord, table_of

if TYPE_CHECKING:
    from tracking.store import SQLBackend

#: The key of `results.metrics` that holds the goal's best attempt id (`reports.rows.rank`).
BEST_ATTEMPT = "best_attempt_id"


def record_best_attempts(backend: SQLBackend, run_id: str,
                         best: Mapping[str, int | None]) -> None:
    """Store each result's best attempt id in its `metrics`, keeping the other keys (one read
    and one batched update, in one transaction)."""
    if not best:
        return
    table = table_of(ResultRecord)
    with backend.engine.begin() as conn:
        stored: dict[str, Any] = {
            str(row.id): row.metrics for row in conn.execute(
                sa.select(table.c.id, table.c.metrics).where(table.c.run_id == run_id))}
        params = [{"b_id": result_id, "b_metrics": {**(stored[result_id] or {}),
                                                    BEST_ATTEMPT: attempt_id}}
                  for result_id, attempt_id in best.items() if result_id in stored]
        if params:
            conn.execute(sa.update(table).where(table.c.id == sa.bindparam("b_id"))
                         .values(metrics=sa.bindparam("b_metrics", type_=table.c.metrics.type)),
                         params)


def stored_best(results: Iterable[ResultRecord]) -> dict[str, int | None]:
    """Per result id: its stored best attempt id, for the results that have one stored."""
    out: dict[str, int | None] = {}
    for result in results:
        metrics: Any = result.metrics
        if isinstance(metrics, dict) and BEST_ATTEMPT in metrics:
            value = metrics[BEST_ATTEMPT]
            out[result.id] = int(value) if value is not None else None
    return out


def without_best(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`metrics` without the stored best attempt (a goal re-opened by a resume)."""
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if k != BEST_ATTEMPT}
