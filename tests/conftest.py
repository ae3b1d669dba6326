"""Suite-wide settings: no network at import or run, quiet third-party telemetry.

Area-specific fixtures live in each test folder's own conftest.py.
"""

import contextlib
import os
import tempfile

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("LITELLM_LOG", "ERROR")
# HTML reports the flows write go to a throwaway folder, not the user's data directory.
os.environ.setdefault("SIEGEFLOW_REPORT_DIR", tempfile.mkdtemp(prefix="siegeflow-test-reports-"))
# A command that runs a flow without a configured Prefect API starts the data directory's
# background server: in tests that directory is a throwaway one, stopped at session end.
os.environ["SIEGEFLOW_PREFECT_HOME"] = (tempfile.mkdtemp(prefix="siegeflow-test-prefect-"))
# Prefect retries of a failed step: fast in tests (tasks read this at import).
os.environ.setdefault("SIEGEFLOW_TASK_RETRY_DELAYS", "0.2,0.2")

#: The PostgreSQL server every machine runs; CI must reach it (tests fail, never skip).
POSTGRES_ADMIN_URL = os.environ.get(
    "SIEGEFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


import pytest  # noqa: E402 - after the environment above, which plugins read at import


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the background server (by its recorded PID) some test's command left running."""
    from pathlib import Path

    from flows.server import stop_server

    stop_server(Path(os.environ["SIEGEFLOW_PREFECT_HOME"]))


@pytest.fixture(scope="session")
def prefect_api_url(tmp_path_factory: pytest.TempPathFactory):
    """One real Prefect server for the whole session, started on first use.

    A cold start migrates the server's database (10-60 s on a busy 2-core machine), so every
    test folder shares it instead of starting its own.
    """
    from pathlib import Path

    from flows.server import private_prefect_api

    home = tmp_path_factory.mktemp("prefect-home")
    saved = os.environ.pop("PREFECT_API_URL", None)
    try:
        with private_prefect_api(Path(home)) as url:
            yield url
    finally:
        if saved is not None:
            os.environ["PREFECT_API_URL"] = saved


@contextlib.contextmanager
def throwaway_postgres_database(prefix: str):
    """A uniquely named database on the test PostgreSQL server, dropped afterwards.

    CI must reach the server: an unreachable one fails the test, it never skips.
    """
    import uuid

    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable: {exc}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from tracking.store import _BACKENDS  # close pooled connections before dropping

        backend = _BACKENDS.pop(url, None)
        if backend is not None:
            backend.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """One throwaway PostgreSQL database for the session."""
    with throwaway_postgres_database("siegeflow_session") as url:
        yield url


@pytest.fixture
def fresh_postgres_url():
    """A throwaway PostgreSQL database for one test (when it needs an empty store)."""
    with throwaway_postgres_database("siegeflow_test") as url:
        yield url
