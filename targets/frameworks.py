"""Agents you already have as targets, with their real tools (extra `agents`): a LangChain
runnable or LangGraph graph, or an OpenAI Agents SDK `Agent` — one concept, two adapters.

`python:module:agent` naming such an object runs it on the conversation with its real model
and tools: a runnable gets `{"messages": [...]}` and its last message without tool calls is the
answer; an SDK agent runs through `agents.Runner.run` (tracing off) and its `final_output` is
the answer. Each tool call it made is recorded with its arguments, what the tool returned and
the error it raised, if any.

The injection hook: `instrument(agent)` wraps every tool of the agent once per agent object —
a LangGraph graph's `ToolNode` tools by `siegeflow_tool`, an SDK agent's function tools (and
those of the agents it hands off to) by `siegeflow_function_tool` — and a custom graph can wrap
its own tools with `siegeflow_tool` directly. A wrapped tool reports each call and its output
to the hooks of the run in progress (a context variable: one agent object serves concurrent
runs), which may rewrite the output before the agent reads it — what the tool-output injection
attacker does (`optimizers.library.framework_harness`). Without hooks the wrapper only records.

LangChain and the Agents SDK are imported only here and only when such a target runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    error: str | None = None

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
    error: str | None = None


_hooks: ContextVar[ToolHooks | None] = ContextVar("siegeflow_tool_hooks", default=None)
_seen: ContextVar[list[_Seen] | None] = ContextVar("siegeflow_tool_seen", default=None)
_WRAPPED = "siegeflow_wrapped"


def is_runnable(obj: object) -> bool:
    """A LangChain runnable / LangGraph graph (anything with `ainvoke`)."""
    return callable(getattr(obj, "ainvoke", None))


def is_sdk_agent(obj: object) -> bool:
    """An OpenAI Agents SDK `Agent` (the SDK is already imported by whoever built one)."""
    sdk = sys.modules.get("agents")
    agent_type = getattr(sdk, "Agent", None)
    return isinstance(agent_type, type) and isinstance(obj, agent_type)


def is_agent(obj: object) -> bool:
    """An agent one of the adapters runs: a runnable or an Agents SDK agent."""
    return is_runnable(obj) or is_sdk_agent(obj)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


async def _through_hooks(name: str, arguments: dict[str, Any],
                         invoke: Callable[[], Awaitable[Any]]) -> Any:
    """Run one tool call under the run's hooks: report the call, run the tool, let the hooks
    replace its output, record what it returned (or raised) and what the agent read."""
    hooks = _hooks.get()
    seen = _seen.get()
    if hooks is not None:
        await hooks.tool_call(name, arguments)
    try:
        value = await invoke()
    except Exception as exc:
        if seen is not None:  # the framework turns it into what its model reads (or fails)
            seen.append(_Seen(tool=name, arguments=arguments, output="", delivered="",
                              error=f"{type(exc).__name__}: {exc}"[:500]))
        raise
    output = _as_text(value)
    delivered: Any = value
    if hooks is not None:
        replaced = await hooks.tool_output(name, arguments, output)
        if replaced is not None:
            delivered = replaced
    if seen is not None:
        seen.append(_Seen(tool=name, arguments=arguments, output=output,
                          delivered=_as_text(delivered)))
    return delivered


def siegeflow_tool(tool: Any) -> Any:
    """`tool` (a LangChain `BaseTool`) wrapped so the run's hooks see its calls and outputs."""
    from langchain_core.tools import StructuredTool

    if (tool.metadata or {}).get(_WRAPPED):
        return tool

    async def run(**arguments: Any) -> str:
        value = await _through_hooks(tool.name, arguments, lambda: tool.ainvoke(arguments))
        return _as_text(value)

    return StructuredTool.from_function(
        coroutine=run, name=tool.name, description=tool.description,
        args_schema=tool.args_schema, metadata={**(tool.metadata or {}), _WRAPPED: True},
    )


def siegeflow_function_tool(tool: Any) -> Any:
    """An Agents SDK `FunctionTool` wrapped in place so the run's hooks see its calls and
    outputs; the same object is returned (wrapping twice is a no-op).

    The SDK's own failure handling stays: a tool that raises is recorded with its error, and
    the SDK turns the error into what its model reads (its `failure_error_function`).
    """
    if getattr(tool, _WRAPPED, False):
        return tool
    invoker = tool.on_invoke_tool
    # A `function_tool` invoker catches the tool's errors itself: wrapping the call inside it
    # sees the error before the SDK turns it into text; any other invoker is wrapped whole.
    inner = getattr(invoker, "_invoke_tool_impl", None)
    original = inner if callable(inner) else invoker

    async def invoke(ctx: Any, input_json: str) -> Any:
        try:
            arguments = json.loads(input_json or "{}")
        except ValueError:
            arguments = {"_raw": input_json}
        if not isinstance(arguments, dict):
            arguments = {"_raw": arguments}
        return await _through_hooks(tool.name, arguments, lambda: original(ctx, input_json))

    if callable(inner):
        invoker._invoke_tool_impl = invoke
    else:
        tool.on_invoke_tool = invoke
    setattr(tool, _WRAPPED, True)
    return tool


def instrument(agent: Any) -> tuple[str, ...]:
    """Wrap the agent's tools for the hooks (see the module's docstring); their names."""
    if is_sdk_agent(agent):
        return tuple(_wrap_sdk(agent, set()))
    from langgraph.prebuilt import ToolNode

    names: list[str] = []
    for node in getattr(agent, "nodes", {}).values():
        bound = getattr(node, "bound", None)
        if isinstance(bound, ToolNode):
            for name, tool in list(bound.tools_by_name.items()):
                bound.tools_by_name[name] = siegeflow_tool(tool)
                names.append(name)
    return tuple(names)


def tool_names(agent: Any) -> list[str]:
    """The names of the agent's tools (what `instrument` wraps)."""
    if is_sdk_agent(agent):
        return [t.name for t in _sdk_function_tools(agent, set())]
    from langgraph.prebuilt import ToolNode

    return [name for node in getattr(agent, "nodes", {}).values()
            if isinstance(getattr(node, "bound", None), ToolNode)
            for name in node.bound.tools_by_name]


async def run_agent(
    agent: Any, messages: Sequence[ChatMessage], hooks: ToolHooks | None = None
) -> FrameworkRun:
    """Run either kind of agent once on `messages` (a raising agent is a run with `error`)."""
    if is_sdk_agent(agent):
        return await run_sdk_agent(agent, messages, hooks)
    return await run_runnable(agent, messages, hooks)


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
    made: list[tuple[str, dict[str, Any], str | None]] = []
    prompt_tokens = completion_tokens = 0
    for m in lc:
        if not isinstance(m, AIMessage):
            continue
        usage: Mapping[str, Any] = m.usage_metadata or {}
        prompt_tokens += int(usage.get("input_tokens", 0))
        completion_tokens += int(usage.get("output_tokens", 0))
        made.extend((call["name"], dict(call["args"]), call.get("id")) for call in m.tool_calls)
    calls = _calls(made, outputs, seen)
    final = lc[-1] if lc and isinstance(lc[-1], AIMessage) and not lc[-1].tool_calls else None
    typed = [message_from_openai(_openai(m), index=i) for i, m in enumerate(lc)]
    return FrameworkRun(
        answer=_content(final.content) if final is not None else None, calls=calls,
        messages=typed, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
    )


def _calls(made: Sequence[tuple[str, dict[str, Any], str | None]], outputs: Mapping[str, str],
           seen: Sequence[_Seen]) -> tuple[FrameworkToolCall, ...]:
    """The calls the agent made, in order, each with what the agent read (`outputs`, by call id)
    and what the wrapped tool returned or raised (`seen`, matched by tool name in order)."""
    originals = list(seen)
    calls = []
    for name, arguments, call_id in made:
        delivered = outputs.get(call_id or "", "")
        original = next((s for s in originals if s.tool == name), None)
        if original is not None:
            originals.remove(original)
        calls.append(FrameworkToolCall(
            tool=name, arguments=arguments, id=call_id, delivered=delivered,
            output=original.output if original and original.error is None else delivered,
            error=original.error if original else None))
    return tuple(calls)


def tool_calls_of(run: FrameworkRun) -> tuple[ToolCall, ...]:
    """The run's tool calls as recorded on an attempt: each with the output the agent read."""
    return tuple(ToolCall(name=c.tool, arguments=json.dumps(c.arguments, default=str), id=c.id,
                          output=c.delivered, error=c.error)
                 for c in run.calls)


# -- the OpenAI Agents SDK ------------------------------------------------------------------------

def _sdk_agents(agent: Any, visited: set[int]) -> list[Any]:
    """The agent and the agents it can hand off to (each once)."""
    if id(agent) in visited:
        return []
    visited.add(id(agent))
    found = [agent]
    for handoff in getattr(agent, "handoffs", None) or ():
        if is_sdk_agent(handoff):
            found.extend(_sdk_agents(handoff, visited))
    return found


def _sdk_function_tools(agent: Any, visited: set[int]) -> list[Any]:
    from agents import FunctionTool

    return [t for a in _sdk_agents(agent, visited) for t in a.tools if isinstance(t, FunctionTool)]


def _wrap_sdk(agent: Any, visited: set[int]) -> list[str]:
    names = []
    for tool in _sdk_function_tools(agent, visited):
        siegeflow_function_tool(tool)
        names.append(tool.name)
    return names


def _sdk_input(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """The conversation as the SDK's input items (Responses-style)."""
    from targets.messages import AssistantMessage, SystemMessage, ToolMessage, UserMessage

    items: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, SystemMessage | UserMessage):
            items.append({"role": m.role, "content": m.text})
        elif isinstance(m, AssistantMessage):
            if m.content:
                items.append({"role": "assistant", "content": m.content})
            items.extend({"type": "function_call", "call_id": c.id or f"call_{i}", "name": c.name,
                          "arguments": c.arguments or "{}"} for i, c in enumerate(m.tool_calls))
        elif isinstance(m, ToolMessage):
            items.append({"type": "function_call_output", "call_id": m.tool_call_id,
                          "output": m.content})
    return items


def _field(raw: Any, name: str) -> Any:
    return raw.get(name) if isinstance(raw, Mapping) else getattr(raw, name, None)


async def run_sdk_agent(
    agent: Any, messages: Sequence[ChatMessage], hooks: ToolHooks | None = None
) -> FrameworkRun:
    """Run an Agents SDK agent once on `messages` (tracing off: nothing leaves the process but
    the agent's own model calls); a raising agent is a run with `error`, not raised."""
    from agents import ItemHelpers, RunConfig, Runner

    from targets.messages import AssistantMessage, ToolMessage

    seen: list[_Seen] = []
    hooks_token, seen_token = _hooks.set(hooks), _seen.set(seen)
    try:
        items: Any = _sdk_input(messages)  # TypedDicts of the SDK's input items
        result = await Runner.run(agent, items, run_config=RunConfig(tracing_disabled=True))
    except Exception as exc:  # noqa: BLE001  the agent under test failing is a recorded target error
        return FrameworkRun(answer=None, calls=(), messages=list(messages),
                            error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        _hooks.reset(hooks_token)
        _seen.reset(seen_token)
    typed: list[ChatMessage] = list(messages)
    made: list[tuple[str, dict[str, Any], str | None]] = []
    outputs: dict[str, str] = {}
    for item in result.new_items:
        raw = item.raw_item
        if item.type == "tool_call_item" and _field(raw, "type") == "function_call":
            name, call_id = str(_field(raw, "name")), _field(raw, "call_id")
            arguments_json = str(_field(raw, "arguments") or "{}")
            try:
                arguments = json.loads(arguments_json)
            except ValueError:
                arguments = {"_raw": arguments_json}
            made.append((name, arguments if isinstance(arguments, dict) else {"_raw": arguments},
                         call_id))
            typed.append(AssistantMessage(tool_calls=(
                ToolCall(name=name, arguments=arguments_json, id=call_id),)))
        elif item.type == "tool_call_output_item":
            call_id, output = str(_field(raw, "call_id")), _field(raw, "output")
            outputs[call_id] = _content(output) if isinstance(output, str | list) else _as_text(output)
            typed.append(ToolMessage(content=outputs[call_id], tool_call_id=call_id))
        elif item.type == "message_output_item":
            typed.append(AssistantMessage(content=ItemHelpers.text_message_output(item)))
    final = result.final_output
    answer = None if final is None else final if isinstance(final, str) else (
        final.model_dump_json() if hasattr(final, "model_dump_json") else _as_text(final))
    usage = result.context_wrapper.usage
    return FrameworkRun(answer=answer, calls=_calls(made, outputs, seen), messages=typed,
                        prompt_tokens=int(usage.input_tokens), completion_tokens=int(usage.output_tokens))


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
