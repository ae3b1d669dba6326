"""Optimizer._dispatch bookkeeping and exception safety, and the actor wrapper's poisoning."""

from __future__ import annotations

import asyncio

import pytest

from optimizers import (
    ChannelPoisonedError,
    ControllableInjection,
    ControllablePreCallEvent,
    Evaluation,
    Event,
    EventChannel,
    EventResponse,
    InvalidResponseError,
    Optimizer,
    OptimizerExitedError,
    RunEndEvent,
    RunEndResponse,
    RunStartEvent,
    Scope,
    Trajectory,
    run_optimizer_actor,
)
from tests.optimizers.conftest import arun

pytestmark = pytest.mark.timeout(60)


class Recorder(Optimizer):
    """Notes what it saw, and the trajectory state at each event; may fail on demand."""

    def __init__(self, fail_on: type[Event] | None = None, fail_at_run: int = 0) -> None:
        super().__init__()
        self.fail_on = fail_on
        self.fail_at_run = fail_at_run
        self.runs = 0
        self.log: list[tuple[str, object, int]] = []

    async def on_event(self, event):
        self.log.append((type(event).__name__, self.current_trajectory, len(self.past_trajectories)))
        if self.fail_on is not None and isinstance(event, self.fail_on) and self.runs == self.fail_at_run:
            raise RuntimeError(f"failing on {type(event).__name__}")
        if isinstance(event, ControllablePreCallEvent):
            return ControllableInjection(event=event, controllable=event.controllable, value="attack")
        if isinstance(event, RunEndEvent):
            self.runs += 1
            return RunEndResponse(event=event, done=False)
        return EventResponse(event=event)


async def one_run(channel: EventChannel, controllable, trajectory: Trajectory):
    view = trajectory.view(Scope.everything())
    await channel.send(RunStartEvent(trajectory=view), timeout=5)
    answer = await channel.send(ControllablePreCallEvent(controllable=controllable, request="q"), timeout=5)
    end = RunEndEvent(evaluation=Evaluation(success=False, score=0.1))
    trajectory.finish(end)
    done = await channel.send(end, timeout=5)
    return view, answer, done


def test_current_set_on_run_start_and_archived_on_run_end(user_input):
    async def main():
        channel = EventChannel()
        optimizer = Recorder()
        optimizer.initialize("goal", [user_input], [], None)
        actor = asyncio.create_task(optimizer.run(channel))
        assert optimizer.current_trajectory is None and optimizer.past_trajectories == []
        views = []
        for index in range(3):
            view, answer, done = await one_run(channel, user_input, Trajectory(goal="goal", run_index=index))
            assert answer.value == "attack" and done.done is False
            assert optimizer.current_trajectory is None  # cleared before the RunEndResponse arrived
            assert optimizer.past_trajectories[-1] is view
            views.append(view)
        channel.close()
        await asyncio.wait_for(actor, 5)
        return optimizer, views

    optimizer, views = arun(main)
    assert optimizer.past_trajectories == views
    assert [t.evaluation.score for t in optimizer.past_trajectories] == [0.1, 0.1, 0.1]
    # during a run, current_trajectory is that run's view; RunEnd sees it before archiving
    names = [(name, current is not None, past) for name, current, past in optimizer.log]
    assert names[:3] == [("RunStartEvent", True, 0), ("ControllablePreCallEvent", True, 0), ("RunEndEvent", True, 0)]
    assert names[3] == ("RunStartEvent", True, 1)


@pytest.mark.parametrize("fail_on, archived", [(RunEndEvent, True), (ControllablePreCallEvent, False), (RunStartEvent, False)])
def test_failing_event_is_rejected_reraised_and_archived_only_on_run_end(user_input, fail_on, archived):
    async def main():
        channel = EventChannel()
        optimizer = Recorder(fail_on=fail_on, fail_at_run=1)
        optimizer.initialize("goal", [user_input], [], None)
        actor = asyncio.create_task(optimizer.run(channel))
        await one_run(channel, user_input, Trajectory(goal="goal"))  # run 0 is fine
        with pytest.raises(RuntimeError, match=f"failing on {fail_on.__name__}"):  # the sender gets it
            await one_run(channel, user_input, Trajectory(goal="goal", run_index=1))
        with pytest.raises(RuntimeError, match="failing on"):  # ...and run() exits with it
            await asyncio.wait_for(actor, 5)
        return optimizer

    optimizer = arun(main)
    assert len(optimizer.past_trajectories) == (2 if archived else 1)
    assert (optimizer.current_trajectory is None) == archived


def test_invalid_response_from_on_event_reaches_both_sides(user_input):
    class Wrong(Optimizer):
        async def on_event(self, event):
            return RunEndResponse(event=event, done=True)  # wrong for everything but RunEndEvent

    async def main():
        channel = EventChannel()
        optimizer = Wrong()
        actor = asyncio.create_task(optimizer.run(channel))
        with pytest.raises(InvalidResponseError):
            await channel.send(ControllablePreCallEvent(controllable=user_input, request="q"), timeout=5)
        with pytest.raises(InvalidResponseError):
            await asyncio.wait_for(actor, 5)

    arun(main)


def test_llm_property_needs_initialize():
    optimizer = Recorder()
    with pytest.raises(RuntimeError, match="initialize"):
        _ = optimizer.llm
    sentinel = object()
    optimizer.initialize("goal", [], [], sentinel)  # type: ignore[arg-type]  # a sentinel, not an LLMClient
    assert optimizer.llm is sentinel and optimizer.goal == "goal"


def test_past_trajectories_is_a_copy():
    optimizer = Recorder()
    optimizer.past_trajectories.append("tampered")  # type: ignore[arg-type]  # tampering on purpose
    assert optimizer.past_trajectories == []


def test_no_deadlock_when_on_event_raises_mid_run_with_concurrent_senders(user_input):
    """The failing event's sender gets the error; every other sender is released by the poison."""

    class Slow(Optimizer):
        async def on_event(self, event):
            await asyncio.sleep(0.01)
            if isinstance(event, ControllablePreCallEvent) and event.request == 3:
                raise ValueError("optimizer bug")
            return ControllableInjection(event=event, controllable=event.controllable, value=event.request)

    async def main():
        channel = EventChannel()
        actor = asyncio.create_task(run_optimizer_actor(
            Slow(), channel, goal="g", controllables=[user_input], observables=[], llm_client=None,
        ))
        senders = [
            asyncio.create_task(channel.send(ControllablePreCallEvent(controllable=user_input, request=i)))
            for i in range(8)  # no send timeout: only the poison can release them
        ]
        results = await asyncio.wait_for(asyncio.gather(*senders, return_exceptions=True), 5)
        with pytest.raises(ValueError, match="optimizer bug"):
            await asyncio.wait_for(actor, 5)
        with pytest.raises(ChannelPoisonedError):
            await channel.send(ControllablePreCallEvent(controllable=user_input, request=99))
        return results

    results = arun(main)
    assert [r.value for r in results[:3]] == [0, 1, 2]
    assert isinstance(results[3], ValueError)
    assert all(isinstance(r, ChannelPoisonedError) for r in results[4:])


def test_parallel_dispatch_failure_then_controller_poison_releases_everyone(user_input):
    """Parallel consumption (the spec's run()): one handler fails while others hang.

    The failing sender gets its error at once. The hung handlers keep run() alive (the spec's
    gather waits for them), so the controller's bounded wait + set_error is what frees the rest.
    """

    class Parallel(Optimizer):
        async def run(self, channel):
            tasks = set()
            async for envelope in channel:
                task = asyncio.create_task(self._dispatch(envelope))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)

        async def on_event(self, event):
            if event.request == 0:
                raise ValueError("first handler fails")
            await asyncio.sleep(30)  # the others would never answer

    async def main():
        channel = EventChannel()
        actor = asyncio.create_task(run_optimizer_actor(
            Parallel(), channel, goal="g", controllables=[user_input], observables=[], llm_client=None,
        ))
        senders = [
            asyncio.create_task(channel.send(ControllablePreCallEvent(controllable=user_input, request=i)))
            for i in range(4)
        ]
        with pytest.raises(ValueError, match="first handler fails"):
            await asyncio.wait_for(senders[0], 5)
        channel.close()
        done, _ = await asyncio.wait({actor}, timeout=0.2)
        assert not done  # still waiting for its hung handlers
        channel.set_error(RuntimeError("optimizer did not stop"))
        actor.cancel()
        results = await asyncio.wait_for(asyncio.gather(*senders[1:], return_exceptions=True), 5)
        await asyncio.wait({actor}, timeout=5)
        return results

    assert all(isinstance(r, ChannelPoisonedError) for r in arun(main))


def test_run_returning_early_poisons_the_channel(user_input):
    class Quitter(Optimizer):
        async def run(self, channel):
            return  # never consumes

    async def main():
        channel = EventChannel()
        await asyncio.wait_for(run_optimizer_actor(
            Quitter(), channel, goal="g", controllables=[user_input], observables=[], llm_client=None,
        ), 5)
        with pytest.raises(ChannelPoisonedError) as info:
            await channel.send(ControllablePreCallEvent(controllable=user_input, request=1))
        assert isinstance(info.value.__cause__, OptimizerExitedError)

    arun(main)
