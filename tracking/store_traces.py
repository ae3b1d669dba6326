"""Trace storage: per-stream sequence numbers, the background writer, reads.

Why: traces are the high-volume rows (tens of thousands per run). ``enqueue_trace`` does the
per-trace work on the caller's thread (redaction and JSON serialisation, so later changes to
the caller's dict cannot leak into the row), takes the next sequence number of the trace's
stream under one lock and queues the row; the ``BatchWriter`` thread inserts batches with
driver-level ``executemany`` (SQLite) or ``COPY`` (PostgreSQL), and bumps the run's
heartbeat at most once a second. Sequence streams are ``(run_id, result_id)``;
``result_id=None`` is the run-level stream (pipeline steps). A stream this process has not
written yet is seeded from ``max(sequence)+1`` in the database, so a resumed run continues
its numbering.

Mixed into ``SQLBackend``; relies on its ``engine``, ``_writer`` and the attributes set up
by ``_init_traces``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tracking.models import RunRecord, TraceRecord, table_of, utcnow
from tracking.redaction import redact, redact_json
from tracking.writer import BatchWriter, QueuedRow, TraceWriteError

TRACE_COLUMNS = (
    "run_id",
    "result_id",
    "sequence",
    "step_name",
    "step_type",
    "content",
    "created_at",
)
_HEARTBEAT_EVERY_S = 1.0
_SYNC_INSERT_ATTEMPTS = 3
_ROWS_PER_INSERT = 100  # 700 bound parameters, well under SQLite's limit


def _sqlite_now() -> str:
    """UTC now in the text format SQLAlchemy's SQLite DateTime reads back."""
    return datetime.now(UTC).isoformat(" ", "microseconds")[:26]


class TraceStoreMixin:
    """Trace methods of ``SQLBackend`` (see module docstring)."""

    engine: Engine
    _writer: BatchWriter

    def _init_traces(self) -> None:
        dialect = self.engine.dialect
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        columns = ", ".join(TRACE_COLUMNS)
        self._row_sql = f"({', '.join([marker] * len(TRACE_COLUMNS))})"
        self._trace_sql = f"INSERT INTO traces ({columns}) VALUES {self._row_sql}"
        self._trace_copy_sql = f"COPY traces ({columns}) FROM STDIN"
        self._use_copy = dialect.name == "postgresql"
        # The writer bypasses SQLAlchemy's type processing: SQLite gets SQLAlchemy's own text
        # format for datetimes, PostgreSQL an aware datetime.
        self._now: Callable[[], Any] = _sqlite_now if dialect.name == "sqlite" else utcnow
        self._seq_lock = threading.Lock()
        self._next_seq: dict[tuple[str, str | None], int] = {}
        self._heartbeats: dict[str, float] = {}

    def flush(self, run_id: str | None = None, timeout_s: float = 60.0) -> None:
        """Write every trace enqueued so far; raise ``TraceWriteError`` for rows lost.

        With ``run_id`` only that run's failures are reported (and cleared).
        """
        if not self._writer.wait(timeout_s):
            raise TimeoutError(f"trace writer did not drain within {timeout_s}s")
        failures = self._writer.take_failures(run_id)
        if failures:
            raise TraceWriteError(failures)

    def enqueue_trace(
        self,
        *,
        run_id: str,
        step_name: str,
        step_type: str,
        content: Any = None,
        result_id: str | None = None,
    ) -> int:
        """Queue a trace for the background writer; returns its sequence number at once."""
        text = None if content is None else redact_json(content)
        created_at = self._now()
        key = (run_id, result_id)
        if key not in self._next_seq:
            self._seed_sequence(key)
        with self._seq_lock:
            sequence = self._next_seq[key]
            row = (run_id, result_id, sequence, step_name[:200], step_type[:64], text, created_at)
            self._writer.submit(run_id, row)
            self._next_seq[key] = sequence + 1
        return sequence

    def create_trace(
        self,
        *,
        run_id: str,
        step_name: str,
        step_type: str,
        content: Any = None,
        result_id: str | None = None,
    ) -> int:
        """Insert a trace synchronously and return its id (pipeline-step traces use this).

        If another process took the sequence number meanwhile (the unique index says so),
        the stream is re-seeded from the database and the insert retried.
        """
        key = (run_id, result_id)
        if key not in self._next_seq:
            self._seed_sequence(key)
        table = table_of(TraceRecord)
        for attempt in range(_SYNC_INSERT_ATTEMPTS):
            with self._seq_lock:
                sequence = self._next_seq[key]
                self._next_seq[key] = sequence + 1
            stmt = sa.insert(table).values(
                run_id=run_id,
                result_id=result_id,
                sequence=sequence,
                step_name=step_name[:200],
                step_type=step_type[:64],
                content=redact(content),
                created_at=utcnow(),
            )
            try:
                with self.engine.begin() as conn:
                    inserted = conn.execute(stmt).inserted_primary_key
                    assert inserted is not None  # an INSERT always has one
                    return int(inserted[0])
            except sa.exc.IntegrityError:
                if attempt + 1 == _SYNC_INSERT_ATTEMPTS:
                    raise
                self._seed_sequence(key, advance=True)
        raise AssertionError("unreachable")

    def update_trace(self, trace_id: int, *, content: Any) -> bool:
        """Replace a trace's content (a pipeline step's trace is completed this way)."""
        table = table_of(TraceRecord)
        stmt = sa.update(table).where(table.c.id == trace_id).values(content=redact(content))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def list_traces(
        self,
        *,
        run_id: str | None = None,
        result_id: str | None = None,
        run_level_only: bool = False,
    ) -> list[TraceRecord]:
        """Traces of a result (by sequence) or of a run (run-level first, then per result).

        Waits for this process's queued traces first, so a writer reads its own writes.
        """
        if run_id is None and result_id is None:
            raise ValueError("list_traces needs run_id and/or result_id")
        self._writer.wait()
        query = select(TraceRecord)
        if run_id is not None:
            query = query.where(TraceRecord.run_id == run_id)
        if result_id is not None:
            query = query.where(TraceRecord.result_id == result_id)
        elif run_level_only:
            query = query.where(col(TraceRecord.result_id).is_(None))
        query = query.order_by(
            sa.nulls_first(sa.asc(col(TraceRecord.result_id))),
            col(TraceRecord.sequence),
        )
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(query).all())

    def _seed_sequence(
        self, key: tuple[str, str | None], fresh: bool = False, advance: bool = False
    ) -> None:
        """Set where a stream's numbering starts (0 for a row created just now); with
        ``advance``, move it past whatever another process wrote meanwhile."""
        current = None
        if not fresh:
            run_id, result_id = key
            table = table_of(TraceRecord)
            query = sa.select(sa.func.max(table.c.sequence))
            if result_id is None:
                query = query.where(table.c.run_id == run_id, table.c.result_id.is_(None))
            else:
                query = query.where(table.c.result_id == result_id)
            with self.engine.connect() as conn:
                current = conn.execute(query).scalar()
        start = 0 if current is None else int(current) + 1
        with self._seq_lock:
            if advance:
                self._next_seq[key] = max(self._next_seq.get(key, 0), start)
            else:
                self._next_seq.setdefault(key, start)

    def _write_traces(self, batch: list[QueuedRow]) -> None:
        rows = [params for _, params in batch]
        now = time.monotonic()
        stale = []
        for run_id in {run_id for run_id, _ in batch}:
            if now - self._heartbeats.get(run_id, 0.0) >= _HEARTBEAT_EVERY_S:
                self._heartbeats[run_id] = now
                stale.append({"b_id": run_id})
        with self.engine.begin() as conn:
            if self._use_copy and len(rows) > 1:
                self._copy_traces(conn, rows)
            else:
                self._insert_many(conn, rows)
            if stale:
                table = table_of(RunRecord)
                stmt = (
                    sa.update(table)
                    .where(table.c.id == sa.bindparam("b_id"))
                    .values(heartbeat_at=sa.literal(utcnow(), table.c.heartbeat_at.type))
                )
                conn.execute(stmt, stale)

    def _insert_many(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
        """Multi-row INSERTs of up to ``_ROWS_PER_INSERT`` rows: one driver call per chunk
        instead of one per row (each driver call hands the GIL back and forth)."""
        full, rest = divmod(len(rows), _ROWS_PER_INSERT)
        if full:
            sql = self._multi_insert_sql(_ROWS_PER_INSERT)
            chunks = [
                tuple(
                    v
                    for row in rows[i * _ROWS_PER_INSERT : (i + 1) * _ROWS_PER_INSERT]
                    for v in row
                )
                for i in range(full)
            ]
            conn.exec_driver_sql(sql, chunks)
        if rest:
            tail = rows[full * _ROWS_PER_INSERT :]
            conn.exec_driver_sql(
                self._multi_insert_sql(rest), tuple(v for row in tail for v in row)
            )

    def _multi_insert_sql(self, count: int) -> str:
        return self._trace_sql + (", " + self._row_sql) * (count - 1)

    def _copy_traces(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
        """PostgreSQL bulk path: COPY is several times faster than executemany."""
        import psycopg

        driver = conn.connection.driver_connection
        try:
            with driver.cursor() as cursor, cursor.copy(self._trace_copy_sql) as copy:  # type: ignore[union-attr]  # psycopg 3 here
                for row in rows:
                    copy.write_row(row)
        except psycopg.IntegrityError as exc:  # same signal as executemany: retry row by row
            raise sa.exc.IntegrityError(self._trace_copy_sql, None, exc) from exc
