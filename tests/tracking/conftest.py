"""Fixtures of the tracking tests: a real SQLite file and a real PostgreSQL database.

PostgreSQL is not optional: every store test runs on both backends, and an unreachable server
is a test failure with a clear message, never a skip (CI must reach 127.0.0.1:5432). Each test
session creates its own uniquely named database (other engineers run tests concurrently on
the same server) and drops it at the end; migration tests get a fresh database each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_ADMIN_URL
from tracking import SQLBackend


def _admin() -> sa.Engine:
    return sa.create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 10}
    )


def create_pg_database(prefix: str) -> tuple[str, str]:
    """Create a throwaway database; return (name, url). Fails the test if unreachable."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = _admin()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        safe = make_url(POSTGRES_ADMIN_URL).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL is unreachable at {safe} ({exc.orig!s}). The tracking tests require it "
            "(set SIEGEFLOW_TEST_POSTGRES_URL to point elsewhere); they never skip.",
            pytrace=False,
        )
    finally:
        engine.dispose()
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return name, url


def drop_pg_database(name: str) -> None:
    engine = _admin()
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """One PostgreSQL database for the session's store tests (tests isolate by run id)."""
    name, url = create_pg_database("sf_tracking")
    yield url
    drop_pg_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tracking.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database with nothing in it (a fresh PostgreSQL database per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name, url = create_pg_database("sf_tracking_mig")
    yield url
    drop_pg_database(name)


@pytest.fixture
def backend(store_url: str) -> Iterator[SQLBackend]:
    store = SQLBackend(store_url)
    yield store
    store.close()


@pytest.fixture
def run_id(backend: SQLBackend) -> str:
    return backend.create_run(attack_type="test", target_description="unit test target")
