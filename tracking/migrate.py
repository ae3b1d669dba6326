"""Programmatic Alembic for the tracking store: no alembic.ini, works from an installed wheel.

``SQLBackend`` calls ``upgrade(engine)`` on first connect. Several processes (Prefect task
runners) may open a fresh database at once, so the upgrade runs under a database-wide lock:
``BEGIN IMMEDIATE`` on SQLite (transactional DDL, the second process waits on the busy
timeout and then finds the schema at head) and a transaction-scoped advisory lock on
PostgreSQL. The version table is ``tracking_alembic_version`` so the store can share a
database with another Alembic-managed application.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
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
    if revision == "head" and (_at_packaged_head(engine) or _create_at_head(engine)):
        return
    from alembic import command

    target = head_revision() if revision == "head" else revision
    if current_revision(engine) == target:
        return
    with _locked(engine) as conn:
        command.upgrade(alembic_config(conn), revision)


@contextlib.contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that holds the database-wide migration lock."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            yield conn


def _create_at_head(engine: Engine) -> bool:
    """Create an empty store's tables from the models and stamp it at the packaged head.

    Why: a new store otherwise imports Alembic and replays every revision, ~0.2-0.4 s of a
    first command on a small machine, for the same schema (`test_models_match_migrations`
    checks models and migrations agree; `test_a_new_store_is_created_as_migrations_make_it`
    compares both schemas). False, with nothing done, when any of the store's tables exists:
    Alembic then upgrades it. Under the same lock as an upgrade, so concurrent first
    connects create it once.
    """
    head = _packaged_head()
    if head is None:
        return False
    from sqlmodel import SQLModel

    import tracking.models  # noqa: F401 - registers the tables on SQLModel.metadata

    with _locked(engine) as conn:
        ours = set(SQLModel.metadata.tables) | {VERSION_TABLE}
        if ours & set(sa.inspect(conn).get_table_names()):
            return False
        SQLModel.metadata.create_all(conn)
        version = sa.Table(  # the table Alembic keeps its revision in, as Alembic makes it
            VERSION_TABLE, sa.MetaData(),
            sa.Column("version_num", sa.String(32), nullable=False),
            sa.PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
        )
        version.create(conn)
        conn.execute(version.insert().values(version_num=head))
    return True


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the schema (used by tests and by operators rolling back a release)."""
    from alembic import command

    with _locked(engine) as conn:
        command.downgrade(alembic_config(conn), revision)
