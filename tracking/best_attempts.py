"""Each goal's best attempt and attempt counts, stored at the end of a run (issue 23): `runs
show` and the terminal's goal table then read O(goals) attempts by id instead of every attempt
of a goal, and the attempts line sums O(goals) counts instead of counting the run in SQL.

In the result's `metrics` JSON: `BEST_ATTEMPT` (the id; None: the goal had no attempt) and
`ATTEMPT_COUNTS` ({attempts, answered, errors, pending}). A result without them (a run
finished before this, or re-opened by a resume) is read the old way.
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
#: Results read and updated per statement by `record_best_attempts` (an `IN` list).
_CHUNK = 500
#: The key of `results.metrics` that holds the goal's attempts counted at the end of the run.
ATTEMPT_COUNTS = "attempt_counts"


def record_best_attempts(backend: SQLBackend, run_id: str,
                         best: Mapping[str, int | None],
                         counts: Mapping[str, Mapping[str, int]] | None = None) -> None:
    """Store each result's best attempt id (and its attempt counts) in its `metrics`, keeping
    the other keys (one read and one batched update, in one transaction)."""
    if not best:
        return
    table = table_of(ResultRecord)
    ids = list(best)
    with backend.engine.begin() as conn:
        # `_CHUNK` results at a time: 50,000 goals' metrics and updates at once were ~115 MB
        for start in range(0, len(ids), _CHUNK):
            mine = ids[start:start + _CHUNK]
            stored: dict[str, Any] = {
                str(row.id): row.metrics for row in conn.execute(
                    sa.select(table.c.id, table.c.metrics).where(table.c.run_id == run_id,
                                                                 table.c.id.in_(mine)))}
            params = [{"b_id": result_id, "b_metrics": {
                **(stored[result_id] or {}), BEST_ATTEMPT: best[result_id],
                **({ATTEMPT_COUNTS: dict(counts[result_id])} if counts and result_id in counts
                   else {})}}
                      for result_id in mine if result_id in stored]
            if params:
                conn.execute(sa.update(table).where(table.c.id == sa.bindparam("b_id"))
                             .values(metrics=sa.bindparam("b_metrics",
                                                          type_=table.c.metrics.type)),
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


def stored_counts(results: Iterable[ResultRecord]) -> dict[str, int] | None:
    """The run's attempts counted from its results' stored counts; None unless every result
    has them (then the store counts them: `tracking.store_aggregates.attempt_counts`)."""
    total = dict.fromkeys(("attempts", "answered", "errors", "pending"), 0)
    for result in results:
        metrics: Any = result.metrics
        mine = metrics.get(ATTEMPT_COUNTS) if isinstance(metrics, dict) else None
        if not isinstance(mine, dict):
            return None
        for key in total:
            total[key] += int(mine.get(key) or 0)
    return total


def without_best(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`metrics` without what the end of the run stored (a goal re-opened by a resume)."""
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if k not in (BEST_ATTEMPT, ATTEMPT_COUNTS)}
