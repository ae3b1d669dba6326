"""A Python callable as the target: `python:package.module:function`.

The callable receives the conversation as typed messages (`targets.messages`) and returns the
answer: a `str`, or a `Reply` with tool calls and token counts. Sync callables run in a thread
so they cannot stall the event loop; async ones are awaited. Imported once per process.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from targets.completion import ToolCall
from targets.config import TargetConfig
from targets.errors import AttemptError, scrub
from targets.messages import ChatMessage, from_openai

PREFIX = "python:"
_SPEC = re.compile(r"^python:([A-Za-z_][\w.]*):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A structured answer from a Python target: text and the tool calls it made."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0


class TargetImportError(ValueError):
    """`python:module:callable` names nothing importable and callable."""


def check_spec(model: str) -> tuple[str, str]:
    """(module, attribute) of a `python:` target; ValueError when malformed."""
    match = _SPEC.match(model)
    if match is None:
        raise ValueError(f"{model!r}: a Python target is python:package.module:callable")
    return match.group(1), match.group(2)


@functools.cache
def load(model: str) -> Callable[..., Any]:
    """The callable named by `python:module:attr`, imported once."""
    module_name, attr = check_spec(model)
    if os.getcwd() not in sys.path:  # as uvicorn's --app-dir: your app's modules, from where you run
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetImportError(f"{model}: cannot import {module_name}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TargetImportError(f"{model}: {module_name} has no attribute {attr}")
        obj = getattr(obj, part)
    from targets.frameworks import is_agent

    if not callable(obj) and not is_agent(obj):
        raise TargetImportError(f"{model}: {attr} is neither callable nor an agent "
                                "(a LangChain runnable / LangGraph graph, an Agents SDK Agent)")
    return obj  # type: ignore[no-any-return]


async def attempt(
    config: TargetConfig,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    params: dict[str, Any],
    api_key: str | None,
) -> tuple[dict[str, Any] | None, AttemptError | None]:
    """Call the function once → (parsed result, None) or (None, error with its cause)."""
    fn = load(config.model)
    typed: list[ChatMessage] = from_openai(messages)
    timeout_s = params["timeout_s"]
    from targets.frameworks import is_agent

    if is_agent(fn):
        return await _framework_attempt(config, fn, typed, timeout_s)
    try:
        if inspect.iscoroutinefunction(fn):
            value = await asyncio.wait_for(fn(typed), timeout_s)
        else:
            value = await asyncio.wait_for(asyncio.to_thread(fn, typed), timeout_s)
    except TimeoutError:
        return None, AttemptError(kind="timeout", message=f"{config.model} took over {timeout_s:g}s")
    except Exception as exc:  # noqa: BLE001  the app under test failing is a recorded target error
        return None, AttemptError(kind="api_error",
                                  message=scrub(f"{type(exc).__name__}: {exc}", api_key))
    return _result(config.model, value)


async def _framework_attempt(
    config: TargetConfig, agent: Any, messages: list[ChatMessage], timeout_s: float
) -> tuple[dict[str, Any] | None, AttemptError | None]:
    """A LangChain/LangGraph or Agents SDK agent: its answer, and the tool calls it made with
    their outputs."""
    from targets.frameworks import instrument, run_agent, tool_calls_of

    _instrumented(agent, instrument)
    try:
        run = await asyncio.wait_for(run_agent(agent, messages), timeout_s)
    except TimeoutError:
        return None, AttemptError(kind="timeout", message=f"{config.model} took over {timeout_s:g}s")
    if run.error is not None:
        return None, AttemptError(kind="api_error", message=run.error)
    return {"text": run.answer, "tool_calls": tool_calls_of(run), "finish_reason": "stop",
            "prompt_tokens": run.prompt_tokens, "completion_tokens": run.completion_tokens}, None


_done: set[int] = set()


def _instrumented(agent: Any, instrument: Callable[[Any], tuple[str, ...]]) -> tuple[str, ...]:
    """Wrap an agent's tools once per process (the object lives as long as its module)."""
    if id(agent) not in _done:
        _done.add(id(agent))
        return instrument(agent)
    return ()


def _result(model: str, value: Any) -> tuple[dict[str, Any] | None, AttemptError | None]:
    if isinstance(value, str):
        value = Reply(text=value)
    if not isinstance(value, Reply):
        return None, AttemptError(kind="invalid_response",
                                  message=f"{model} returned {type(value).__name__}, "
                                  "expected str or targets.pyfunc.Reply")
    return {"text": value.text, "tool_calls": value.tool_calls, "finish_reason": "stop",
            "prompt_tokens": value.prompt_tokens, "completion_tokens": value.completion_tokens}, None
