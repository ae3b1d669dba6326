"""Fixtures of the optimize-flow tests: one real Prefect server per session, a scripted
OpenAI-compatible server per test (attacker, target, judge and agent told apart by model name),
and a SQLite tracking store per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("SIEGEFLOW_TASK_RETRY_DELAYS", "0.2,0.2")

from tests.optimize.responders import Script
from tests.support.openai_server import OpenAIServer


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def llm_server(script: Script) -> Iterator[OpenAIServer]:
    with OpenAIServer(responder=script) as server:
        yield server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'siegeflow.db'}"
