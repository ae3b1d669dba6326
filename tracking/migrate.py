"""Programmatic Alembic for the tracking store: no alembic.ini, works from an installed wheel.

``SQLBackend`` calls ``upgrade(engine)`` on first connect. Several processes (Prefect task
runners) may open a fresh database at once, so the upgrade runs under a database-wide lock:
``BEGIN IMMEDIATE`` on SQLite (transactional DDL, the second process waits on the busy
timeout and then finds the schema at head) and a transaction-scoped advisory lock on
PostgreSQL. The version table is ``tracking_alembic_version`` so the store can share a
database with another Alembic-managed application.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "tracking_alembic_version"
_PG_LOCK_KEY = 0x5EF10_7AC  # arbitrary constant shared by every siegeflow process


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config pointing at the packaged migrations (and at ``connection``)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    config.set_main_option("version_table", VERSION_TABLE)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions found under {SCRIPT_LOCATION}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` under a database-wide lock (no-op when there)."""
    target = head_revision() if revision == "head" else revision
    if current_revision(engine) == target:
        return
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the schema (used by tests and by operators rolling back a release)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            command.downgrade(alembic_config(conn), revision)
