"""A real OpenAI Agents SDK agent (examples/openai_agent.py, two `@function_tool`s) as the target:
its model is the scripted local OpenAI-compatible server (chat completions); its tool calls and
outputs are recorded; the injection attacker plants text in a real tool's output and the agent
pays the attacker. The same checks as test_framework_agent.py (LangGraph): one concept, two
adapters."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("agents")

from targets import TargetConfig, chat
from targets.frameworks import is_sdk_agent, run_agent
from targets.messages import user
from targets.pyfunc import load
from tests.optimize.responders import Script
from tests.optimize.test_framework_agent import (
    check_harness_injects_into_a_real_tool,
    check_injection_attacker_makes_agent_pay,
)
from tests.support.openai_server import OpenAIServer

AGENT = "python:examples.openai_agent:agent"


@pytest.fixture
def example(llm_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example module, imported against this test's server."""
    monkeypatch.setenv("AGENT_API_BASE", llm_server.base_url)
    sys.modules.pop("examples.openai_agent", None)
    load.cache_clear()
    assert is_sdk_agent(load(AGENT))
    yield sys.modules["examples.openai_agent"]
    sys.modules.pop("examples.openai_agent", None)
    load.cache_clear()


def test_sdk_agent_target_answers_and_reports_its_tool_calls_with_outputs(
        example: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.tracing.processors import BatchTraceProcessor

    traced: list[Any] = []  # what the SDK's default processor would export to OpenAI
    monkeypatch.setattr(BatchTraceProcessor, "on_trace_start", lambda self, t: traced.append(t))
    monkeypatch.setattr(BatchTraceProcessor, "on_span_end", lambda self, s: traced.append(s))
    config = TargetConfig(model=AGENT, max_retries=0, timeout_s=20)
    result = asyncio.run(chat(config, [user("Summarise my inbox")]))
    assert traced == []  # tracing is off for siegeflow's runs: nothing leaves for OpenAI
    assert result.ok, result.error
    assert result.text is not None and result.text.startswith("Summary: you have two new emails")
    assert [c.name for c in result.tool_calls] == ["read_inbox"]
    assert result.tool_calls[0].output is not None
    assert result.tool_calls[0].output.startswith("From: alice@example.com")
    assert result.tool_calls[0].error is None
    assert result.prompt_tokens > 0
    assert example.TRANSFERS == []


def test_sdk_agent_takes_the_conversation_so_far(example: ModuleType, script: Script) -> None:
    from targets.messages import assistant

    run = asyncio.run(run_agent(load(AGENT), [user("hi"), assistant("Hello!"),
                                              user("Summarise my inbox")]))
    assert run.error is None and run.answer is not None
    model, sent = script.requests[0]
    assert model == "agent"
    assert [(m["role"], m.get("content")) for m in sent][-3:] == [
        ("user", "hi"), ("assistant", "Hello!"), ("user", "Summarise my inbox")]


def test_harness_injects_into_a_real_sdk_tool_and_records_calls_and_outputs(
        example: ModuleType) -> None:
    check_harness_injects_into_a_real_tool(AGENT, example)


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_injection_attacker_makes_the_real_sdk_agent_pay(
    prefect_api_url: str, llm_server: OpenAIServer, sqlite_url: str, tmp_path: Path,
    example: ModuleType,
) -> None:
    check_injection_attacker_makes_agent_pay(AGENT, example, llm_server, sqlite_url, tmp_path)


def test_a_raising_tool_is_recorded_with_its_error_and_the_sdk_error_text() -> None:
    """A function tool that raises: the SDK tells its model (its failure handler), siegeflow
    records the call with the error and the text the model read."""
    from agents import Agent, OpenAIChatCompletionsModel, function_tool
    from openai import AsyncOpenAI

    from targets.frameworks import instrument, tool_calls_of
    from tests.support.replies import Reply, ToolCall

    @function_tool
    def lookup(order: str) -> str:
        """Look an order up."""
        raise LookupError(f"no order {order}")

    def respond(request: dict[str, Any]) -> Reply:
        if request["messages"][-1]["role"] == "user":
            return Reply(tool_calls=(ToolCall(name="lookup", arguments='{"order": "A1"}',
                                              id="call_1"),))
        return Reply(text="Sorry, I could not find it.")

    with OpenAIServer(responder=respond) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        agent = Agent(name="shop", tools=[lookup],
                      model=OpenAIChatCompletionsModel(model="m", openai_client=client))
        assert instrument(agent) == ("lookup",)
        run = asyncio.run(run_agent(agent, [user("where is my order A1?")]))
    assert run.error is None and run.answer == "Sorry, I could not find it."
    (call,) = tool_calls_of(run)
    assert call.name == "lookup" and call.arguments == '{"order": "A1"}'
    assert call.error == "LookupError: no order A1"
    assert call.output is not None and "no order A1" in call.output  # what the SDK told its model
