"""Fixtures and helpers for the optimizer actor tests.

Every await in these tests is bounded: a deadlock must fail a test, never hang the suite.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from optimizers import Controllable, Observable, SecurityDomain

T = TypeVar("T")

#: Upper bound of any single test body (seconds).
BOUND_S = 20.0


def arun(factory: Callable[[], Coroutine[Any, Any, T]], timeout: float = BOUND_S) -> T:
    """Run a coroutine in a fresh loop; fail with TimeoutError instead of hanging."""

    async def bounded() -> T:
        return await asyncio.wait_for(factory(), timeout)

    return asyncio.run(bounded())


class LoopThread:
    """A thread running `asyncio.run(factory())`: the "other side" on its own loop."""

    def __init__(self, factory: Callable[[], Awaitable[Any]], timeout: float = BOUND_S) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.loop_id: int | None = None

        async def main() -> Any:
            self.loop_id = id(asyncio.get_running_loop())
            return await asyncio.wait_for(factory(), timeout)  # type: ignore[arg-type]  # factory makes a coroutine

        def body() -> None:
            try:
                self.result = asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001 - reported by join()
                self.error = exc

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def join(self, timeout: float = BOUND_S) -> Any:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError("loop thread did not finish")
        if self.error is not None:
            raise self.error
        return self.result

    async def ajoin(self, timeout: float = BOUND_S) -> Any:
        return await asyncio.to_thread(self.join, timeout)


@pytest.fixture
def user_input() -> Controllable:
    return Controllable(name="user_turn", domain=SecurityDomain.USER_INPUT, description="the user message")


@pytest.fixture
def tool_output() -> Controllable:
    return Controllable(name="search_result", domain=SecurityDomain.TOOL_OUTPUT)


@pytest.fixture
def system_prompt() -> Controllable:
    return Controllable(name="system_prompt", domain=SecurityDomain.SYSTEM, read_only=True)


@pytest.fixture
def model_reply() -> Observable:
    return Observable(name="reply", domain=SecurityDomain.MODEL_OUTPUT)
