"""Engine construction and the default database location.

Why a factory: SQLite needs per-connection settings for concurrent use (WAL so readers never
block the trace writer, a busy timeout so two writers wait instead of failing,
``synchronous=NORMAL`` because WAL makes it crash-safe for the database and it is far faster,
foreign keys on so SQLite checks what PostgreSQL checks) and real transactions: pysqlite's
legacy mode does not BEGIN before DDL or SELECT, so we take over BEGIN ourselves as the
SQLAlchemy SQLite documentation describes. A connection may ask for ``BEGIN IMMEDIATE`` with
the ``sqlite_begin`` execution option (the migrator does, to serialise concurrent upgrades).
Engines hide bound parameters in their logs and error messages (``hide_parameters``): goal
texts and model responses do not belong in a log line.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from platformdirs import user_data_dir
from sqlalchemy.engine import Engine, make_url

from settings import current_settings

#: Environment variable that overrides the default store URL.
DB_URL_ENV = "SIEGEFLOW_DB_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Tries of the switch of a new SQLite file to WAL, 0.05 s apart (see `_use_wal`).
WAL_SWITCH_TRIES = 100


def default_db_url() -> str:
    """``$SIEGEFLOW_DB_URL``, else a SQLite file under the user data directory."""
    url = current_settings().db_url
    if url:
        return url
    folder = Path(user_data_dir("siegeflow"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'siegeflow.db'}"


class StoreUrlError(ValueError):
    """A tracking-store URL siegeflow cannot use: the message says what was expected."""


_EXPECTED = "expected sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"


def check_store_url(url: str) -> str:
    """``url`` if it names a store siegeflow can open (its dialect and driver load), else raise.

    Run before anything is recorded or Prefect is started, so a typo is one clear line, not a
    traceback from deep inside the first write. Does not connect.
    """
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise StoreUrlError(f"store URL {safe_text(url)!r} is not usable: {_EXPECTED}") from None
    except ImportError as exc:  # the dialect is known but its driver is not installed
        raise StoreUrlError(
            f"store URL {safe_text(url)!r}: driver not installed ({exc.name}); {_EXPECTED}"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreUrlError(
            f"store URL {safe_text(url)!r}: {parsed.get_backend_name()} is not supported; "
            f"{_EXPECTED}"
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StoreUrlError(f"store URL {safe_text(url)!r}: SQLite needs a file; {_EXPECTED}")
    return url


def safe_text(url: str) -> str:
    """Best-effort password hiding for a string that may not even parse as a URL."""
    from tracking.redaction import redact_text

    return redact_text(url)


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def safe_url(url: str) -> str:
    """The URL with any password hidden, for logs and reprs."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """Create an engine configured for concurrent tracking writes (see module docstring)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(
            parsed, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True
        )
    database = parsed.database or ""
    if database in ("", ":memory:") or "mode=memory" in str(parsed.query):
        raise ValueError(
            "in-memory SQLite is not supported by the tracking store (the background writer "
            "uses its own connection); use a file such as sqlite:////tmp/siegeflow.db"
        )
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        parsed,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        hide_parameters=True,
    )
    sa.event.listen(engine, "connect", _configure_sqlite_connection)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL (a no-op once it is). The switch of a new file takes an exclusive
    lock, and when several connections open the same new file at once SQLite may refuse one
    at once with "database is locked" instead of waiting on the busy timeout (two connections
    each holding a shared lock cannot both upgrade it): four connections opening one new file
    together failed in 75 of 400 rounds with plain sqlite3, and once in CI through the store.
    Tried again briefly; any other error, or a lock that lasts, is raised."""
    for attempt in range(WAL_SWITCH_TRIES):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_SWITCH_TRIES - 1:
                raise
            time.sleep(0.05)


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))
