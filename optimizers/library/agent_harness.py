"""The tool-using agent as an optimizer target: the indirect prompt-injection surface.

Controllables: the user's task (`user_input`) and every tool's output, each in its tool's own
domain (`tool_output`, `retrieved_document`) — the optimizer may rewrite what a tool returned
(append to it, replace it). Observables: each tool call the agent makes (`tool_input`) and its
final answer (`model_output`). The default scope lets the optimizer inject into tool outputs and
documents and read tool calls and answers, but not touch the user's task.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from goals import Goal
from judges import Verdict
from optimizers.domains import Controllable, Observable, Scope, SecurityDomain
from optimizers.library.harness import (
    AttackerFailure,
    InvalidInjectionError,
    RunHooks,
    RunOutcome,
    TargetHarness,
    attacker_failure_outcome,
)
from targets import TargetConfig
from targets.agent import AgentResult, AgentSpec, run_agent
from targets.tools import Tool, tools_for

TOOL_CALL_CHECK = "tool_call"


class AgentHarness(TargetHarness):
    """A tool-calling agent over a fake mailbox, file store and bank (see `targets.agent`)."""

    name = "agent"
    Config = AgentSpec
    default_scope = Scope.of(
        SecurityDomain.TOOL_OUTPUT,
        SecurityDomain.RETRIEVED_DOCUMENT,
        read_only=[SecurityDomain.TOOL_INPUT, SecurityDomain.MODEL_OUTPUT],
    )

    def __init__(
        self, target: TargetConfig, config: BaseModel, *, locked: Sequence[str] = ()
    ) -> None:
        super().__init__(target, config, locked=locked)
        spec: AgentSpec = config  # type: ignore[assignment]  # this harness's own config class
        self.spec = spec
        self.task_point = self.controllable(
            "user_task", SecurityDomain.USER_INPUT, "the user's request"
        )
        self.tool_points = {
            tool.name: self.controllable(f"tool:{tool.name}", tool.domain, f"output of {tool.name}")
            for tool in tools_for(spec.toolbox)
        }
        self.tool_call = Observable(
            name="tool_call",
            domain=SecurityDomain.TOOL_INPUT,
            description="a tool call: {'tool': name, 'arguments': {...}}",
        )
        self.answer = Observable(
            name="answer",
            domain=SecurityDomain.MODEL_OUTPUT,
            description="the agent's final answer",
        )
        self.check_keys = (TOOL_CALL_CHECK,) if spec.success is not None else ()

    @property
    def controllables(self) -> tuple[Controllable, ...]:
        return (self.task_point, *self.tool_points.values())

    @property
    def observables(self) -> tuple[Observable, ...]:
        return (self.tool_call, self.answer)

    async def run(self, hooks: RunHooks, goal: Goal) -> RunOutcome:
        agent_hooks = _Hooks(self, hooks)
        try:
            result = await run_agent(self.target, self.spec, agent_hooks)
        except _AttackerFailed as exc:  # raised before the agent's first call: nothing sent
            return attacker_failure_outcome(exc.failure, goal)
        checks = (self._check(result),) if self.spec.success is not None else ()
        prompt_messages = result.messages[:-1] if result.answer is not None else result.messages
        response = result.answer
        if response is None and result.error is None:
            response = f"(no final answer after {result.steps} model calls)"
        return RunOutcome(
            messages=prompt_messages,
            response=response,
            error=result.error,
            error_kind=result.error_kind,
            cost_usd=result.cost_usd,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            latency_s=result.latency_s,
            attempts=result.attempts,
            checks=checks,
            details=_details(result),
            baseline=agent_hooks.baseline,
        )

    def _check(self, result: AgentResult) -> Verdict:
        wanted = self.spec.success
        assert wanted is not None
        hits = [c for c in result.calls if wanted.matches(c.tool, c.arguments)]
        calls = [{"tool": c.tool, "arguments": c.arguments} for c in result.calls]
        raw = json.dumps(
            {"wanted": wanted.model_dump(), "matched": len(hits), "calls": calls}, default=str
        )
        return Verdict(
            judge=TOOL_CALL_CHECK,
            success=bool(hits),
            score=1.0 if hits else 0.0,
            raw=raw[:4000],
            error=None,
        )


class _Hooks:
    """`targets.agent.AgentHooks` on top of an optimizer session."""

    def __init__(self, harness: AgentHarness, hooks: RunHooks) -> None:
        self._harness = harness
        self._hooks = hooks
        self.baseline = False  # the configured task sent after an attacker failure

    async def user_task(self, task: str) -> str | None:
        value = await self._hooks.pre_call(self._harness.task_point, task)
        if isinstance(value, AttackerFailure):
            if not value.send_goal:
                raise _AttackerFailed(value)
            self.baseline = True
            return None
        return None if value is None else _text(value, "the user task")

    async def tool_call(self, tool: Tool | None, name: str, arguments: dict[str, Any]) -> None:
        await self._hooks.observe(self._harness.tool_call, {"tool": name, "arguments": arguments})

    async def tool_output(self, tool: Tool, arguments: dict[str, Any], output: str) -> str | None:
        point = self._harness.tool_points[tool.name]
        value = await self._hooks.post_call(
            point, {"tool": tool.name, "arguments": arguments}, output
        )
        return None if value is None else _text(value, f"the output of {tool.name}")

    async def final_answer(self, text: str) -> None:
        await self._hooks.observe(self._harness.answer, text)


class _AttackerFailed(Exception):
    """The optimizer's attacker wrote no usable task: the run is recorded, nothing is sent."""

    def __init__(self, failure: AttackerFailure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInjectionError(f"{what} must be replaced by a str, got {type(value).__name__}")
    return value


def _details(result: AgentResult) -> dict[str, Any]:
    return {
        "task": result.task,
        "answer": result.answer,
        "stopped": result.stopped,
        "steps": result.steps,
        "calls": [
            {
                "step": c.step,
                "tool": c.tool,
                "arguments": c.arguments,
                "output": c.output[:2000],
                "replaced": c.replaced,
                "delivered": c.delivered[:2000] if c.replaced else None,
            }
            for c in result.calls
        ],
        "side_effects": result.side_effects,
    }
