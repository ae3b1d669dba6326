"""End-to-end fixtures: one real Prefect server per session, a real OpenAI-compatible HTTP server
per test, and a tracking store (a SQLite file, or a fresh PostgreSQL database).

The Prefect server (`prefect_api_url`, in tests/conftest.py) is started once per session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("SIEGEFLOW_TASK_RETRY_DELAYS", "0.2,0.2")

from tests.support.openai_server import OpenAIServer


@pytest.fixture
def llm_server() -> Iterator[OpenAIServer]:
    """The default responder: refuses plain harmful requests, complies with jailbreaks, judges."""
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'siegeflow.db'}"
