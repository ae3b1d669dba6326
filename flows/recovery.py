"""Stale runs: runs whose process died without finalizing them, and how a new run adopts one.

A run keeps `heartbeat_at` fresh every `SIEGEFLOW_HEARTBEAT_S` (15 s) while its flow runs.
SIGTERM crashes the flow and its `on_crashed` hook finalizes the run; SIGKILL (OOM killer, a
lost machine, `kill -9` of a worker) runs nothing, so the run stays PENDING/RUNNING with a
heartbeat that stops moving. Such a run is *stale* once its heartbeat is older than
`SIEGEFLOW_STALE_AFTER_S` (default 60 s = four missed beats).

Two ways to finish one, both keep every recorded completion and judgment and do only the rest:

* `siegeflow resume RUN_ID` (after `siegeflow runs stale` lists it);
* `resume_stale=True` on a deployment run (the nightly schedule in `prefect.yaml` sets it): at
  start, the flow looks for a stale run of the same kind with the same target, attack, judges
  and goals, *claims* it with a compare-and-set on its heartbeat (two runs starting at once
  cannot both adopt it), and resumes it instead of starting a new one.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from settings import current_settings
from tracking import StatusEnum, default_db_url, get_backend, redact
from tracking.models import RunRecord, table_of, utcnow

logger = logging.getLogger("siegeflow.flows.recovery")

#: Parameters that make two runs "the same scan" (concurrency and budget may differ).
IDENTITY_KEYS = ("target", "attack", "judges", "goals", "optimizer", "optimizer_options")
_OPEN = (StatusEnum.PENDING, StatusEnum.RUNNING)


def find_stale(db_url: str | None, older_than_s: float | None = None) -> list[RunRecord]:
    """PENDING/RUNNING runs whose heartbeat is older than `older_than_s` (default:
    `SIEGEFLOW_STALE_AFTER_S`), oldest first."""
    return get_backend(db_url or default_db_url()).find_stale_runs(_stale_after(older_than_s))


def _stale_after(older_than_s: float | None) -> float:
    return older_than_s if older_than_s is not None else current_settings().stale_after_s


def same_scan(stored: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Compare as stored: the store redacts parameters, so redact ours the same way."""
    stored = stored or {}
    mine = redact({k: wanted.get(k) for k in IDENTITY_KEYS})
    return all(stored.get(k) == mine.get(k) for k in IDENTITY_KEYS)


def claim_stale_run(
    db_url: str | None,
    *,
    kind: str,
    parameters: dict[str, Any],
    prefect_flow_run_id: str | None,
    older_than_s: float | None = None,
) -> str | None:
    """Adopt the oldest stale run of the same scan; None when there is none to adopt.

    The claim is one UPDATE guarded by the same staleness condition, so of two flows that
    race for a run exactly one gets `rowcount == 1`.
    """
    older_than_s = _stale_after(older_than_s)
    backend = get_backend(db_url or default_db_url())
    table = table_of(RunRecord)
    for run in backend.find_stale_runs(older_than_s):
        if (run.config or {}).get("kind") != kind or not same_scan(run.parameters, parameters):
            continue
        now = utcnow()
        cutoff = sa.literal(now - timedelta(seconds=older_than_s), table.c.heartbeat_at.type)
        last_seen = sa.func.coalesce(table.c.heartbeat_at, table.c.started_at, table.c.created_at)
        values: dict[str, Any] = {"heartbeat_at": now, "updated_at": now}
        if prefect_flow_run_id:
            values["prefect_flow_run_id"] = prefect_flow_run_id
        stmt = (
            sa.update(table)
            .where(table.c.id == run.id, table.c.status.in_(_OPEN), last_seen < cutoff)
            .values(**values)
        )
        with backend.engine.begin() as conn:
            if conn.execute(stmt).rowcount == 1:
                logger.warning("adopting stale run %s (last heartbeat %s)", run.id,
                               run.heartbeat_at)
                return run.id
    return None


def live_runs(db_url: str | None, fresh_s: float | None = None) -> list[RunRecord]:
    """PENDING/RUNNING runs whose heartbeat is fresher than `fresh_s` (default
    `SIEGEFLOW_STALE_AFTER_S`): runs a process is working on right now, newest first."""
    fresh_s = _stale_after(fresh_s)
    backend = get_backend(db_url or default_db_url())
    cutoff = utcnow() - timedelta(seconds=fresh_s)
    live = []
    for status in _OPEN:
        for run in backend.list_runs(status=status, limit=1000):
            seen = run.heartbeat_at or run.started_at or run.created_at
            if seen is not None and _aware(seen) >= cutoff:
                live.append(run)
    return live


def _aware(moment: Any) -> Any:
    """The store gives UTC; SQLite may hand it back without its zone."""
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
