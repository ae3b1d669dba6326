"""``SQLBackend``: the typed store behind every tracker (SQLite file by default, PostgreSQL by URL).

Why it looks like this:

* Runs, results and statuses are written synchronously (few rows, callers need the ids).
  Traces, the high-volume rows, go through one background ``BatchWriter`` per backend;
  ``enqueue_trace`` returns at once with the trace's sequence number and ``flush()`` makes
  everything enqueued so far visible (and raises ``TraceWriteError`` for rows it lost).
* Sequence numbers are assigned in-process at enqueue time, per ``(run_id, result_id)``
  stream (``tracking.store_traces``). One process writes a given goal at a time (the unique
  constraints reject a second writer's duplicates, which are then counted as lost).
* The store raises on failure; the trackers decide to degrade (``tracking.guard``).
* Every JSON value and free text written goes through ``redact``: no secret is stored.
* Reads return detached SQLModel rows (``RunRecord`` ...); in-process readers first wait for
  the writer so they see their own traces.
"""

from __future__ import annotations

import atexit
import os
import threading
import uuid
import weakref
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Session, SQLModel, col, select

from tracking import migrate
from tracking.engine import default_db_url, make_engine, safe_url
from tracking.enums import EvaluationStatusEnum, StatusEnum
from tracking.models import ResultRecord, RunRecord, table_of, utcnow
from tracking.redaction import redact, redact_text
from tracking.rows import NewResult, ResultUpdate
from tracking.store_pipeline import PipelineStoreMixin
from tracking.store_review import ReviewStoreMixin
from tracking.store_traces import TraceStoreMixin
from tracking.store_validations import ValidationStoreMixin
from tracking.writer import BatchWriter

_IN_CHUNK = 500


_JSON_NONE_AS_NULL = sa.JSON(none_as_null=True).with_variant(
    JSONB(none_as_null=True), "postgresql"
)


class SQLBackend(TraceStoreMixin, PipelineStoreMixin, ValidationStoreMixin, ReviewStoreMixin):
    """Tracking store on SQLAlchemy. ``SQLBackend("sqlite:///path.db")`` or a PostgreSQL URL."""

    def __init__(
        self,
        url: str,
        *,
        migrate_schema: bool = True,
        batch_size: int = 2000,
        flush_interval_s: float = 0.05,
    ) -> None:
        self.url = url
        self.pid = os.getpid()
        self.engine = make_engine(url)
        if migrate_schema:
            migrate.upgrade(self.engine)
        self._init_traces()
        self._closed = False
        self._writer = BatchWriter(
            self._write_traces, batch_size=batch_size, interval_s=flush_interval_s
        )
        atexit.register(_close_at_exit, weakref.ref(self))

    def __repr__(self) -> str:
        return f"SQLBackend({safe_url(self.url)!r})"

    @property
    def dialect_name(self) -> str:
        return self.engine.dialect.name

    @property
    def closed(self) -> bool:
        return self._closed

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Write what is queued, stop the writer and release connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self.engine.dispose()

    # -- runs ----------------------------------------------------------------------------

    def create_run(
        self,
        *,
        attack_type: str,
        target_description: str | None = None,
        config: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        prefect_flow_run_id: str | None = None,
        status: StatusEnum = StatusEnum.PENDING,
        run_id: str | None = None,
    ) -> str:
        """Insert a run (config and parameters redacted) and return its id."""
        now = utcnow()
        run = RunRecord(
            id=run_id or str(uuid.uuid4()),
            attack_type=attack_type,
            status=StatusEnum(status),
            target_description=redact_text(target_description) if target_description else None,
            config=redact(dict(config or {})),
            parameters=redact(dict(parameters)) if parameters is not None else None,
            prefect_flow_run_id=prefect_flow_run_id,
            created_at=now,
            updated_at=now,
            heartbeat_at=now,
            started_at=now if status is StatusEnum.RUNNING else None,
        )
        run_id = run.id
        with Session(self.engine) as session:
            session.add(run)
            session.commit()
        return run_id

    def get_run(self, run_id: str) -> RunRecord | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(RunRecord, run_id)

    def update_run(
        self,
        run_id: str,
        *,
        status: StatusEnum | None = None,
        summary: Mapping[str, Any] | None = None,
        cost_usd: float | None = None,
        parameters: Mapping[str, Any] | None = None,
        prefect_flow_run_id: str | None = None,
        only_if_status_in: Collection[StatusEnum] | None = None,
    ) -> bool:
        """Update a run; with ``only_if_status_in`` it is a compare-and-set. True if a row changed.

        RUNNING sets ``started_at`` once; a terminal status sets ``finished_at``. Every update
        is also a heartbeat.
        """
        table = table_of(RunRecord)
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now, "heartbeat_at": now}
        if status is not None:
            status = StatusEnum(status)
            values["status"] = status
            if status is StatusEnum.RUNNING:
                values["started_at"] = sa.func.coalesce(
                    table.c.started_at, sa.literal(now, table.c.started_at.type)
                )
            if status.is_terminal:
                values["finished_at"] = now
        if summary is not None:
            values["summary"] = redact(dict(summary))
        if cost_usd is not None:
            values["cost_usd"] = float(cost_usd)
        if parameters is not None:
            values["parameters"] = redact(dict(parameters))
        if prefect_flow_run_id is not None:
            values["prefect_flow_run_id"] = prefect_flow_run_id
        stmt = sa.update(table).where(table.c.id == run_id).values(**values)
        if only_if_status_in is not None:
            stmt = stmt.where(table.c.status.in_([StatusEnum(s) for s in only_if_status_in]))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def heartbeat(self, run_id: str) -> None:
        """Mark the run alive (the trace writer also does this while traces flow)."""
        table = table_of(RunRecord)
        with self.engine.begin() as conn:
            conn.execute(sa.update(table).where(table.c.id == run_id).values(heartbeat_at=utcnow()))

    def list_runs(
        self,
        *,
        status: StatusEnum | None = None,
        attack_type: str | None = None,
        prefect_flow_run_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs, newest first (``prefect_flow_run_id``: the runs a Prefect flow run recorded)."""
        query = select(RunRecord)
        if status is not None:
            query = query.where(RunRecord.status == StatusEnum(status))
        if attack_type is not None:
            query = query.where(RunRecord.attack_type == attack_type)
        if prefect_flow_run_id is not None:
            query = query.where(RunRecord.prefect_flow_run_id == prefect_flow_run_id)
        query = query.order_by(sa.desc(col(RunRecord.created_at)), col(RunRecord.id))
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(query.offset(offset).limit(limit)).all())

    def find_stale_runs(self, older_than_s: float) -> list[RunRecord]:
        """PENDING/RUNNING runs with no heartbeat (or start) for ``older_than_s`` seconds."""
        table = table_of(RunRecord)
        cutoff = sa.literal(utcnow() - timedelta(seconds=older_than_s), table.c.heartbeat_at.type)
        last_seen = sa.func.coalesce(table.c.heartbeat_at, table.c.started_at, table.c.created_at)
        query = (
            select(RunRecord)
            .where(table.c.status.in_([StatusEnum.PENDING, StatusEnum.RUNNING]))
            .where(last_seen < cutoff)
            .order_by(table.c.created_at)
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(query).all())

    # -- results -------------------------------------------------------------------------

    def create_results(self, run_id: str, goals: Sequence[NewResult]) -> list[ResultRecord]:
        """Insert result rows in one transaction; idempotent per ``(run_id, goal_index)``.

        Returns the rows in input order; a goal index that already had a row returns the
        existing row untouched (that is how a resumed run finds its results again).
        """
        if not goals:
            return []
        now = utcnow()
        fresh = {g.goal_index: str(uuid.uuid4()) for g in goals}
        rows = [
            {
                "id": fresh[g.goal_index],
                "run_id": run_id,
                "goal": redact_text(g.goal),
                "goal_index": g.goal_index,
                "goal_id": g.goal_id,
                "category": g.category,
                "evaluation_status": EvaluationStatusEnum.NOT_EVALUATED,
                "goal_metadata": redact(dict(g.metadata)) if g.metadata is not None else None,
                "created_at": now,
                "updated_at": now,
            }
            for g in goals
        ]
        stmt = self._insert_ignore(ResultRecord, ["run_id", "goal_index"])
        by_index: dict[int, ResultRecord] = {}
        with Session(self.engine, expire_on_commit=False) as session:
            session.execute(stmt, rows)
            indices = sorted(fresh)
            for start in range(0, len(indices), _IN_CHUNK):
                chunk = indices[start : start + _IN_CHUNK]
                query = select(ResultRecord).where(
                    ResultRecord.run_id == run_id,
                    col(ResultRecord.goal_index).in_(chunk),
                )
                by_index.update({r.goal_index: r for r in session.exec(query).all()})
            session.commit()
        for index, result_id in fresh.items():
            if by_index[index].id == result_id:  # a new row: no traces anywhere yet
                self._seed_sequence((run_id, result_id), fresh=True)
        return [by_index[g.goal_index] for g in goals]

    def create_result(
        self,
        *,
        run_id: str,
        goal: str,
        goal_index: int,
        goal_id: str | None = None,
        category: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Insert one result row (see ``create_results``) and return its id."""
        new = NewResult(
            goal=goal, goal_index=goal_index, goal_id=goal_id, category=category, metadata=metadata
        )
        return self.create_results(run_id, [new])[0].id

    def get_result(self, result_id: str) -> ResultRecord | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(ResultRecord, result_id)

    def list_results(self, run_id: str) -> list[ResultRecord]:
        """A run's results ordered by goal index."""
        query = select(ResultRecord).where(ResultRecord.run_id == run_id)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(query.order_by(col(ResultRecord.goal_index))).all())

    def update_result(
        self,
        result_id: str,
        *,
        evaluation_status: EvaluationStatusEnum | None = None,
        evaluation_notes: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        agent_specific_data: Mapping[str, Any] | None = None,
        only_if_not_evaluated: bool = False,
    ) -> bool:
        """Update one result; True if a row changed (False if absent or already final)."""
        table = table_of(ResultRecord)
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now}
        if evaluation_status is not None:
            values["evaluation_status"] = EvaluationStatusEnum(evaluation_status)
            if values["evaluation_status"].is_final:
                values["evaluated_at"] = now
        if evaluation_notes is not None:
            values["evaluation_notes"] = redact_text(evaluation_notes)
        if metrics is not None:
            values["metrics"] = redact(dict(metrics))
        if agent_specific_data is not None:
            values["agent_specific_data"] = redact(dict(agent_specific_data))
        stmt = sa.update(table).where(table.c.id == result_id).values(**values)
        if only_if_not_evaluated:
            stmt = stmt.where(table.c.evaluation_status == EvaluationStatusEnum.NOT_EVALUATED)
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def update_results(
        self, updates: Sequence[ResultUpdate], *, only_if_not_evaluated: bool = True
    ) -> None:
        """Finalize many results in one transaction (rows already final are left alone)."""
        if not updates:
            return
        table = table_of(ResultRecord)
        now = utcnow()
        stmt = sa.update(table).where(table.c.id == sa.bindparam("b_id"))
        if only_if_not_evaluated:
            stmt = stmt.where(table.c.evaluation_status == EvaluationStatusEnum.NOT_EVALUATED)
        stmt = stmt.values(
            evaluation_status=sa.bindparam("b_status", type_=table.c.evaluation_status.type),
            evaluation_notes=sa.bindparam("b_notes", type_=table.c.evaluation_notes.type),
            metrics=sa.bindparam("b_metrics", type_=table.c.metrics.type),
            # none_as_null: a missing value must bind SQL NULL (so COALESCE keeps the stored
            # data), not the JSON literal 'null', which would erase it.
            agent_specific_data=sa.func.coalesce(
                sa.bindparam("b_agent", type_=_JSON_NONE_AS_NULL), table.c.agent_specific_data
            ),
            updated_at=sa.bindparam("b_now", type_=table.c.updated_at.type),
            evaluated_at=sa.bindparam("b_now2", type_=table.c.evaluated_at.type),
        )
        params = [
            {
                "b_id": u.result_id,
                "b_status": EvaluationStatusEnum(u.evaluation_status),
                "b_notes": redact_text(u.evaluation_notes) if u.evaluation_notes else None,
                "b_metrics": redact(dict(u.metrics)) if u.metrics is not None else None,
                "b_agent": (
                    redact(dict(u.agent_specific_data))
                    if u.agent_specific_data is not None
                    else None
                ),
                "b_now": now,
                "b_now2": now,
            }
            for u in updates
        ]
        with self.engine.begin() as conn:
            conn.execute(stmt, params)

    def _insert_ignore(self, model: type[SQLModel], conflict_columns: list[str]) -> Any:
        table = table_of(model)
        if self.dialect_name == "postgresql":
            return pg_dialect.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
        if self.dialect_name == "sqlite":
            return sqlite_dialect.insert(table).on_conflict_do_nothing(
                index_elements=conflict_columns
            )
        raise NotImplementedError(f"unsupported database dialect {self.dialect_name!r}")


def _close_at_exit(ref: weakref.ReferenceType[SQLBackend]) -> None:
    backend = ref()
    if backend is not None:
        backend.close()


_BACKENDS: dict[str, SQLBackend] = {}
_BACKENDS_LOCK = threading.Lock()


def get_backend(url: str | None = None) -> SQLBackend:
    """One shared backend per URL in this process (Prefect tasks reuse its writer and pool).

    A closed backend, or one inherited through ``fork`` (its writer thread did not survive),
    is replaced by a new one.
    """
    key = url or default_db_url()
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get(key)
        if backend is None or backend.closed or backend.pid != os.getpid():
            backend = SQLBackend(key)
            _BACKENDS[key] = backend
        return backend


class StoreUnavailableError(RuntimeError):
    """The store's URL is well-formed but the store cannot be opened (no such database, a closed
    port, refused credentials, a schema this version cannot migrate)."""


def open_store(url: str) -> SQLBackend:
    """`get_backend(url)`, connected and migrated, or one line saying why it cannot be: run
    before a flow run exists, so a wrong store is bad input, not a failed run."""
    try:
        return get_backend(url)
    except _open_errors() as exc:
        raise StoreUnavailableError(
            f"store {safe_url(url)!r} cannot be opened: {_first_cause(exc)}"
        ) from None


def _open_errors() -> tuple[type[Exception], ...]:
    """What opening a store raises for a store that cannot be used. Evaluated only when
    something was raised: a store at head never imports Alembic (~0.1-0.4 s), and a
    `CommandError` can only come from an Alembic that is already imported."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, CommandError)


def check_store(url: str) -> None:
    """Raise `StoreUnavailableError` unless the store at `url` can be used; records nothing.

    A server store (PostgreSQL) and an existing SQLite file are opened (connected, migrated);
    a SQLite file not made yet is only checked to be creatable, so bad input elsewhere
    leaves no empty store behind."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        path = Path(parsed.database).expanduser()
        if not path.exists():
            folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
            if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
                raise StoreUnavailableError(
                    f"store {safe_url(url)!r} cannot be created: {folder or path.parent} is "
                    "not a writable folder")
            return
    open_store(url)


def _first_cause(exc: BaseException) -> str:
    """The driver's own words (psycopg/sqlite3), on one line, without SQLAlchemy's boilerplate."""
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(str(cause).split())
    return text[:300] or type(cause).__name__

