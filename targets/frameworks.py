"""Agents you already have as targets: a LangChain runnable or LangGraph graph (extra `agents`).

`python:module:agent` naming a runnable (anything with `ainvoke`) runs it on the conversation
(`{"messages": [...]}` in, its messages out) with its real tools. The tool calls it made and
what each tool returned are read from its messages.

The injection hook: `instrument(agent)` swaps every tool of the graph's `ToolNode`s for a
`siegeflow_tool` wrapper (once per agent object), and a custom graph can wrap its own tools
with `siegeflow_tool` directly. A wrapped tool reports each call and its output to the hooks
of the run in progress (a context variable: one agent object serves concurrent runs), which
may rewrite the output before the agent reads it — what the tool-output injection attacker
does (`optimizers.library.framework_harness`).

LangChain is imported only here and only when such a target runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from targets.completion import CallUsage, ToolCall
from targets.messages import ChatMessage, message_from_openai, to_openai


class ToolHooks(Protocol):
    """What a red-teamer sees of a real agent's tools and may change (None: leave it)."""

    async def tool_call(self, name: str, arguments: dict[str, Any]) -> None: ...

    async def tool_output(self, name: str, arguments: dict[str, Any], output: str) -> str | None: ...


@dataclass(frozen=True, kw_only=True)
class FrameworkToolCall:
    """One tool call of a real agent: what the tool returned and what the agent read."""

    tool: str
    arguments: dict[str, Any]
    output: str
    delivered: str
    id: str | None = None

    @property
    def replaced(self) -> bool:
        return self.delivered != self.output


@dataclass(frozen=True, kw_only=True)
class FrameworkRun(CallUsage):
    """One run of a framework agent; `error` when it raised (the run stops there)."""

    answer: str | None
    calls: tuple[FrameworkToolCall, ...]
    messages: list[ChatMessage]
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class _Seen:
    tool: str
    arguments: dict[str, Any]
    output: str
    delivered: str


_hooks: ContextVar[ToolHooks | None] = ContextVar("siegeflow_tool_hooks", default=None)
_seen: ContextVar[list[_Seen] | None] = ContextVar("siegeflow_tool_seen", default=None)
_WRAPPED = "siegeflow_wrapped"


def is_runnable(obj: object) -> bool:
    return callable(getattr(obj, "ainvoke", None))


def siegeflow_tool(tool: Any) -> Any:
    """`tool` (a LangChain `BaseTool`) wrapped so the run's hooks see its calls and outputs."""
    from langchain_core.tools import StructuredTool

    if (tool.metadata or {}).get(_WRAPPED):
        return tool

    async def run(**arguments: Any) -> str:
        hooks = _hooks.get()
        if hooks is not None:
            await hooks.tool_call(tool.name, arguments)
        value = await tool.ainvoke(arguments)
        output = value if isinstance(value, str) else json.dumps(value, default=str)
        delivered = output
        if hooks is not None:
            replaced = await hooks.tool_output(tool.name, arguments, output)
            delivered = output if replaced is None else replaced
        seen = _seen.get()
        if seen is not None:
            seen.append(_Seen(tool=tool.name, arguments=arguments, output=output,
                              delivered=delivered))
        return delivered

    return StructuredTool.from_function(
        coroutine=run, name=tool.name, description=tool.description,
        args_schema=tool.args_schema, metadata={**(tool.metadata or {}), _WRAPPED: True},
    )


def instrument(agent: Any) -> tuple[str, ...]:
    """Wrap the tools of every `ToolNode` in a compiled LangGraph graph; their names."""
    from langgraph.prebuilt import ToolNode

    names: list[str] = []
    for node in getattr(agent, "nodes", {}).values():
        bound = getattr(node, "bound", None)
        if isinstance(bound, ToolNode):
            for name, tool in list(bound.tools_by_name.items()):
                bound.tools_by_name[name] = siegeflow_tool(tool)
                names.append(name)
    return tuple(names)


async def run_runnable(
    agent: Any, messages: Sequence[ChatMessage], hooks: ToolHooks | None = None
) -> FrameworkRun:
    """Run the agent once on `messages`; a raising agent is a run with `error`, not raised."""
    from langchain_core.messages import AIMessage, BaseMessage, ToolMessage, convert_to_messages

    seen: list[_Seen] = []
    hooks_token, seen_token = _hooks.set(hooks), _seen.set(seen)
    try:
        result = await agent.ainvoke({"messages": convert_to_messages(to_openai(messages))})
    except Exception as exc:  # noqa: BLE001  the agent under test failing is a recorded target error
        return FrameworkRun(answer=None, calls=(), messages=list(messages),
                            error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        _hooks.reset(hooks_token)
        _seen.reset(seen_token)
    if isinstance(result, Mapping):
        out = list(result.get("messages") or [])
    else:
        out = [result]
    if out and isinstance(out[-1], str):
        out[-1] = AIMessage(content=out[-1])
    lc = [m for m in out if isinstance(m, BaseMessage)]
    outputs = {m.tool_call_id: _content(m.content) for m in lc if isinstance(m, ToolMessage)}
    originals = list(seen)
    calls: list[FrameworkToolCall] = []
    prompt_tokens = completion_tokens = 0
    for m in lc:
        if not isinstance(m, AIMessage):
            continue
        usage: Mapping[str, Any] = m.usage_metadata or {}
        prompt_tokens += int(usage.get("input_tokens", 0))
        completion_tokens += int(usage.get("output_tokens", 0))
        for call in m.tool_calls:
            delivered = outputs.get(call.get("id") or "", "")
            original = next((s for s in originals if s.tool == call["name"]), None)
            if original is not None:
                originals.remove(original)
            calls.append(FrameworkToolCall(
                tool=call["name"], arguments=dict(call["args"]), id=call.get("id"),
                output=original.output if original else delivered, delivered=delivered))
    final = lc[-1] if lc and isinstance(lc[-1], AIMessage) and not lc[-1].tool_calls else None
    typed = [message_from_openai(_openai(m), index=i) for i, m in enumerate(lc)]
    return FrameworkRun(
        answer=_content(final.content) if final is not None else None, calls=tuple(calls),
        messages=typed, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
    )


def tool_calls_of(run: FrameworkRun) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(name=c.tool, arguments=json.dumps(c.arguments), id=c.id)
                 for c in run.calls)


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content
                       if isinstance(p, str | dict))
    return str(content)


def _openai(message: Any) -> dict[str, Any]:
    from langchain_core.messages import convert_to_openai_messages

    data = convert_to_openai_messages(message)
    assert isinstance(data, dict)
    if not isinstance(data.get("content"), str | type(None)):
        data["content"] = _content(data["content"])
    return data
