"""End-to-end fixtures: one real Prefect server per session, a real OpenAI-compatible HTTP server
per test, and a tracking store (a SQLite file, or a fresh PostgreSQL database).

The Prefect server (`prefect_api_url`, in tests/conftest.py) is started once per session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("SIEGEFLOW_TASK_RETRY_DELAYS", "0.2,0.2")

from tests.conftest import POSTGRES_ADMIN_URL  # noqa: E402
from tests.support.openai_server import OpenAIServer  # noqa: E402


@pytest.fixture
def llm_server() -> Iterator[OpenAIServer]:
    """The default responder: refuses plain harmful requests, complies with jailbreaks, judges."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'siegeflow.db'}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database; CI must reach the server (fail, never skip)."""
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"siegeflow_flows_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
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
