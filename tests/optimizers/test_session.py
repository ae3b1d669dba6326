"""OptimizerSession: the controller helper the target-execution side uses."""

from __future__ import annotations

import asyncio

import pytest

from optimizers import (
    ChannelPoisonedError,
    ControllableInjection,
    ControllablePostCallEvent,
    ControllablePreCallEvent,
    Evaluation,
    EventChannel,
    EventResponse,
    Optimizer,
    OptimizerFailedError,
    OptimizerSession,
    RunEndEvent,
    RunEndResponse,
    Scope,
)
from tests.optimizers.conftest import arun

pytestmark = pytest.mark.timeout(60)


class Attacker(Optimizer):
    """Async initialize/teardown; injects into pre and post calls; done after `runs` runs."""

    def __init__(self, runs: int = 2, crash_on: str | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.crash_on = crash_on
        self.initialized = self.torn_down = False

    async def initialize(self, goal, controllables, observables, llm_client):
        super().initialize(goal, controllables, observables, llm_client)
        await asyncio.sleep(0)
        self.initialized = True

    async def teardown(self):
        self.torn_down = True

    async def on_event(self, event):
        if isinstance(event, ControllablePreCallEvent):
            if event.request == self.crash_on:
                raise RuntimeError("attacker bug")
            return ControllableInjection(event=event, controllable=event.controllable, value=f"evil {event.request}")
        if isinstance(event, ControllablePostCallEvent):
            return ControllableInjection(event=event, controllable=event.controllable, value="poisoned doc")
        if isinstance(event, RunEndEvent):
            return RunEndResponse(event=event, done=len(self.past_trajectories) + 1 >= self.runs)
        return EventResponse(event=event)


def make_session(optimizer, user_input, tool_output, model_reply, scope=None, **kw) -> OptimizerSession:
    return OptimizerSession(
        channel=EventChannel(), goal="g", optimizer=optimizer, llm_client=None,
        controllables=[user_input, tool_output], observables=[model_reply],
        scope=scope or Scope.of("user_input", read_only=["model_output"]), **{"send_timeout": 5, **kw},
    )


@pytest.mark.parametrize("in_thread", [False, True], ids=["same-loop", "own-thread"])
def test_runs_until_done(user_input, tool_output, model_reply, in_thread):
    optimizer = Attacker(runs=2)

    async def main():
        session = make_session(optimizer, user_input, tool_output, model_reply)
        await session.start(in_thread=in_thread, timeout=5)
        assert optimizer.initialized
        results = []
        while not session.done:
            trajectory = await session.run_start()
            assert session.current_trajectory is trajectory
            user = await session.pre_call(user_input, "hi")
            tool = await session.post_call(tool_output, "search", "doc")  # out of scope: not asked
            await session.observe(model_reply, "no")
            done = await session.run_end(Evaluation(success=False))
            results.append((user, tool, done))
        await session.shutdown(timeout=5)
        return session, results

    session, results = arun(main)
    assert results == [("evil hi", None, False), ("evil hi", None, True)]
    assert optimizer.torn_down and session.channel.closed and session.current_trajectory is None
    full = session.trajectories
    assert [t.run_index for t in full] == [0, 1]
    assert [e.injected_value for e in full[0]] == ["evil hi", None, None]
    assert [len(v) for v in optimizer.past_trajectories] == [2, 2]  # pre-call + observation


def test_crash_mid_run_never_hangs_the_target_and_surfaces_in_shutdown(user_input, tool_output, model_reply):
    optimizer = Attacker(crash_on="boom")

    async def main():
        session = make_session(optimizer, user_input, tool_output, model_reply, send_timeout=None)
        await session.start()
        await session.run_start()
        assert await session.pre_call(user_input, "fine") == "evil fine"
        with pytest.raises(RuntimeError, match="attacker bug"):
            await session.pre_call(user_input, "boom")
        with pytest.raises(ChannelPoisonedError):  # no timeout set: only the poison prevents a hang
            await session.pre_call(user_input, "after")
        with pytest.raises(OptimizerFailedError) as info:
            await session.shutdown(timeout=5)
        return info.value

    error = arun(main)
    assert isinstance(error.__cause__, RuntimeError) and optimizer.torn_down


def test_initialize_failure_raises_at_start(user_input, tool_output, model_reply):
    class BadInit(Attacker):
        def initialize(self, goal, controllables, observables, llm_client):
            raise ValueError("missing config")

    async def main():
        session = make_session(BadInit(), user_input, tool_output, model_reply)
        with pytest.raises(OptimizerFailedError) as info:
            await session.start(in_thread=True, timeout=5)
        assert isinstance(info.value.__cause__, ValueError)
        with pytest.raises(ChannelPoisonedError):
            await session.run_start()

    arun(main)


def test_shutdown_timeout_when_the_optimizer_ignores_close(user_input, tool_output, model_reply):
    class Stubborn(Attacker):
        async def run(self, channel):
            await asyncio.sleep(3600)

    async def main():
        session = make_session(Stubborn(), user_input, tool_output, model_reply)
        await session.start()
        with pytest.raises(OptimizerFailedError, match="did not stop"):
            await session.shutdown(timeout=0.1)
        assert isinstance(session.channel.error, OptimizerFailedError)

    arun(main)


def test_misuse_is_reported(user_input, tool_output, model_reply, system_prompt):
    async def main():
        session = make_session(Attacker(), user_input, tool_output, model_reply)
        with pytest.raises(RuntimeError, match="run_start"):
            await session.pre_call(user_input, "x")
        await session.start()
        with pytest.raises(RuntimeError, match="already started"):
            await session.start()
        await session.run_start()
        with pytest.raises(RuntimeError, match="already active"):
            await session.run_start()
        with pytest.raises(ValueError, match="not declared"):
            await session.pre_call(system_prompt, "x")
        await session.run_end(Evaluation(success=None))
        await session.shutdown(timeout=5)
        with pytest.raises(RuntimeError, match="needs an optimizer"):
            await OptimizerSession(channel=EventChannel(), goal="g", controllables=[], scope=Scope()).start()

    arun(main)


def test_remote_actor_session_only_closes(user_input, tool_output, model_reply):
    """Without start(): the optimizer runs elsewhere; shutdown closes the channel and returns."""

    async def main():
        channel = EventChannel()
        session = OptimizerSession(channel=channel, goal="g", controllables=[user_input], scope=Scope.everything())
        await session.shutdown(timeout=1)
        return channel.closed

    assert arun(main)
