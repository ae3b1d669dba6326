"""Programmatic Alembic for the tracking store: no alembic.ini, works from an installed wheel.

``SQLBackend`` calls ``upgrade(engine)`` on first connect. Several processes (Prefect task
runners) may open a fresh database at once, so the upgrade runs under a database-wide lock:
``BEGIN IMMEDIATE`` on SQLite (transactional DDL, the second process waits on the busy
timeout and then finds the schema at head) and a transaction-scoped advisory lock on
PostgreSQL. The version table is ``tracking_alembic_version`` so the store can share a
database with another Alembic-managed application.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "tracking_alembic_version"
_PG_LOCK_KEY = 0x5EF10_7AC  # arbitrary constant shared by every siegeflow process


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config pointing at the packaged migrations (and at ``connection``)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    config.set_main_option("version_table", VERSION_TABLE)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic revisions found under {SCRIPT_LOCATION}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


@cache
def _packaged_head() -> str | None:
    """The single head of the packaged revisions, read from the files (no Alembic import).

    Alembic costs ~0.3-0.5 s to import; every command that opens a store at head skips it.
    None when the files do not make one head obvious (Alembic then decides).
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (SCRIPT_LOCATION / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev = re.search(r'^revision(?::[^=]*)?=\s*"([^"]+)"', text, re.M)
        down = re.search(r'^down_revision(?::[^=]*)?=\s*"([^"]+)"', text, re.M)
        if rev:
            revisions.add(rev.group(1))
        if down:
            parents.add(down.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _at_packaged_head(engine: Engine) -> bool:
    head = _packaged_head()
    if head is None:
        return False
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return False
        versions = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return versions == [head]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` under a database-wide lock (no-op when there)."""
    if revision == "head" and _at_packaged_head(engine):
        return
    from alembic import command

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
    from alembic import command

    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            command.downgrade(alembic_config(conn), revision)
