"""Deterministic step failures inside worker-run flow processes (armed by faultshim/).

Each fault raises when the Completions step *starts* (from its progress reporter's `start`),
before any request is sent, so a failed attempt never leaves a request in flight and the
tests can count requests exactly:

* the first Completions step of every flow-run process fails once → a Prefect task retry;
* in runs whose goal file is named `faulty-*`: shard FLAKY_SHARD fails every step attempt of its
  first flow attempt (→ a Prefect flow retry that succeeds) and shard PERMA_SHARD always fails
  (→ the shard stays failed and its goals become ERROR_TEST_FRAMEWORK);
* in runs whose goal file is named `zombie-*`: every shard's first flow-run process stops itself
  with SIGSTOP (a machine that vanished: no heartbeat, no state) until the test kills it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import signal
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

FLAKY_SHARD = 0
PERMA_SHARD = 1
_TARGET = "tasks.completions"


class InjectedFault(ConnectionResetError):
    """Raised by the shim; a ConnectionResetError like a lost worker connection."""


def _field(value: Any, name: str) -> Any:
    """Flow parameters arrive as models in the flow process (dicts through the API)."""
    if value is None:
        return None
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def _decide(state: dict[str, int]) -> str | None:
    from prefect import runtime

    state["starts"] += 1
    if state["starts"] == 1:
        return "first Completions step of this process"
    params = runtime.flow_run.parameters or {}
    source = str(_field(params.get("goals"), "source") or "")
    index = _field(params.get("shard"), "index")
    if "zombie-" in source and index is not None:
        _freeze_once(Path(source), index)
        return None
    if "faulty-" not in source or index is None:
        return None
    if index == PERMA_SHARD:
        return f"shard {PERMA_SHARD} always fails"
    if index == FLAKY_SHARD and (runtime.flow_run.run_count or 1) <= 1:
        return f"shard {FLAKY_SHARD} fails its first flow attempt"
    return None


def zombie_pid_file(goals: Path, index: int) -> Path:
    return goals.with_name(f"{goals.stem}.shard{index}.pid")


def _freeze_once(goals: Path, index: int) -> None:
    """Stop this whole process (SIGSTOP), the first time per shard: a vanished machine.

    Nothing runs any more — no step, no state report, no heartbeat — and the worker, waiting on
    a child that never exits, reports nothing either. The pid file lets the test kill it later
    and makes the shard's next flow run (the parent's retry) go through.
    """
    pid_file = zombie_pid_file(goals, index)
    if pid_file.exists():
        return
    pid_file.write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGSTOP)


def patch(module: ModuleType) -> None:
    base = module.StepProgress
    state = {"starts": 0}

    class FaultyProgress(base):  # type: ignore[misc, valid-type]  # a subclass of a class chosen at run time
        async def start(self, *args: Any, **kwargs: Any) -> Any:
            reason = _decide(state)
            if reason:
                raise InjectedFault(f"injected fault: {reason}")
            return await super().start(*args, **kwargs)

    module.StepProgress = FaultyProgress


class _Finder(importlib.abc.MetaPathFinder):
    """Patch `tasks.completions` right after it is executed, whoever imports it."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]  # patched on purpose
        return spec


def arm() -> None:
    if _TARGET in sys.modules:
        patch(sys.modules[_TARGET])
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
