"""Test harnesses run by import path, as a user's own target would be."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from goals import Goal
from optimizers.library.harness import ChatHarness, RunHooks, RunOutcome

#: goal text -> threads/loops the target side ran in.
TARGET_SIDE: dict[str, dict[str, set[int]]] = {}


class ProbeChat(ChatHarness):
    """The chat harness, noting where (thread, loop) the target side runs."""

    async def run(self, hooks: RunHooks, goal: Goal) -> RunOutcome:
        seen = TARGET_SIDE.setdefault(goal.text, {"threads": set(), "loops": set()})
        seen["threads"].add(threading.get_ident())
        seen["loops"].add(id(asyncio.get_running_loop()))
        return await super().run(hooks, goal)


class Exploding(ChatHarness):
    """A target whose own code fails for goals mentioning 'explode' (not the optimizer's fault)."""

    async def run(self, hooks: RunHooks, goal: Goal) -> Any:
        if "explode" in goal.text:
            raise RuntimeError("target harness bug")
        return await super().run(hooks, goal)
