"""Security scope: what reaches the optimizer, what its trajectory view holds, and isolation."""

from __future__ import annotations

import gc
import types

import pytest

from optimizers import (
    Controllable,
    ControllableInjection,
    ControllableNoInjection,
    ControllablePostCallEvent,
    ControllablePreCallEvent,
    Evaluation,
    EventChannel,
    EventResponse,
    FilteredTrajectory,
    Observable,
    ObservableEvent,
    Optimizer,
    OptimizerSession,
    ReadableTrajectory,
    RunEndEvent,
    RunEndResponse,
    Scope,
    SecurityDomain,
    Trajectory,
    compose,
    scoped,
)
from tests.optimizers.conftest import arun

pytestmark = pytest.mark.timeout(60)


def test_scope_semantics(user_input, tool_output, system_prompt):
    scope = Scope.of(SecurityDomain.USER_INPUT, read_only=["tool_output", "user_input"])
    assert scope.domains == {"user_input"} and scope.read_only == {"tool_output"}
    assert scope.may_inject(user_input) and not scope.may_inject(tool_output)
    assert scope.may_read("tool_output") and scope.may_read(SecurityDomain.USER_INPUT)
    assert not scope.may_read("system")
    assert not Scope.everything().may_inject(system_prompt)  # read_only points stay untouched
    assert Scope.everything().may_inject(tool_output)
    assert not Scope().may_read("user_input")  # empty by default
    assert Scope(domains="user_input").domains == {"user_input"}  # a lone string is one domain
    assert Controllable(name="x", domain=SecurityDomain.MEMORY).domain == "memory"
    with pytest.raises(ValueError):
        Controllable(name="", domain="x")


def test_scoped_middleware_answers_out_of_scope_without_the_optimizer(user_input, tool_output, system_prompt):
    reached: list[object] = []

    async def optimizer_side(event):  # stands in for channel.send: records what got through
        reached.append(event)
        if isinstance(event, ControllablePreCallEvent | ControllablePostCallEvent):
            return ControllableInjection(event=event, controllable=event.controllable, value="evil")
        return EventResponse(event=event)

    send = compose(optimizer_side, scoped(Scope.of("user_input", read_only=["model_output"])))
    secret = Observable(name="internal_log", domain="system")
    reply = Observable(name="reply", domain="model_output")

    async def main():
        in_scope = await send(ControllablePreCallEvent(controllable=user_input, request="q"))
        tool = await send(ControllablePostCallEvent(controllable=tool_output, request="s", response="doc"))
        system = await send(ControllablePreCallEvent(controllable=system_prompt, request="be safe"))
        hidden = await send(ObservableEvent(observable=secret, value="trace"))
        visible = await send(ObservableEvent(observable=reply, value="no"))
        return in_scope, tool, system, hidden, visible

    in_scope, tool, system, hidden, visible = arun(main)
    assert isinstance(in_scope, ControllableInjection)
    assert isinstance(tool, ControllableNoInjection) and tool.controllable == tool_output
    assert isinstance(system, ControllableNoInjection)
    assert type(hidden) is EventResponse
    assert type(visible) is EventResponse
    assert [type(e).__name__ for e in reached] == ["ControllablePreCallEvent", "ObservableEvent"]
    assert reached[1].observable == reply


def test_filtered_view_holds_only_readable_entries(user_input, tool_output, system_prompt):
    trajectory = Trajectory(goal="g", run_index=4)
    early = trajectory.record(ControllablePreCallEvent(controllable=user_input, request="a"))
    view = trajectory.view(Scope.of("user_input", read_only=["tool_output"]))
    trajectory.record(ControllablePreCallEvent(controllable=system_prompt, request="secret system prompt"))
    tool = trajectory.record(ControllablePostCallEvent(controllable=tool_output, request="s", response="doc"))
    trajectory.record(ObservableEvent(observable=Observable(name="log", domain="system"), value="secret"))
    end = RunEndEvent(evaluation=Evaluation(success=True, score=1.0))
    trajectory.finish(end)

    assert isinstance(view, FilteredTrajectory) and isinstance(view, ReadableTrajectory)
    assert list(view) == [early, tool] and len(view) == 2 and len(trajectory) == 4
    assert view.end_event is end and view.evaluation.success is True and view.finished
    assert view.run_index == 4 and view.goal == "g"
    with pytest.raises(RuntimeError):
        trajectory.record(ControllablePreCallEvent(controllable=user_input, request="late"))
    with pytest.raises(RuntimeError):
        trajectory.finish(end)
    with pytest.raises(TypeError):
        trajectory.record(end)  # type: ignore[arg-type]  # a wrong event on purpose
    # a view made after the end still gets everything readable, including the evaluation
    late = trajectory.view(Scope.of("tool_output"))
    assert list(late) == [tool] and late.end_event is end


def _reachable(root: object, stop_at: type) -> bool:
    """Whether an instance of `stop_at` can be reached from `root` through object references
    (attributes, containers, closures), not counting classes, modules and functions' globals."""
    skip = (type, types.ModuleType, types.BuiltinFunctionType)
    seen: set[int] = set()
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        if type(obj) is stop_at:
            return True
        if isinstance(obj, types.FunctionType):  # closure cells and defaults, not module globals
            todo.extend(cell.cell_contents for cell in obj.__closure__ or ())
            todo.extend(obj.__defaults__ or ())
            todo.extend((obj.__kwdefaults__ or {}).values())
            continue
        todo.extend(gc.get_referents(obj))
    return False


def test_reachability_helper_does_find_the_trajectory():
    trajectory = Trajectory(goal="g")
    assert _reachable({"nested": [trajectory]}, Trajectory)
    assert _reachable(lambda: trajectory, Trajectory)  # through a closure cell


class Snoop(Optimizer):
    """Keeps every event it is sent, and tries to inject everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[object] = []

    async def on_event(self, event):
        self.events.append(event)
        if isinstance(event, ControllablePreCallEvent | ControllablePostCallEvent):
            return ControllableInjection(event=event, controllable=event.controllable, value="evil")
        if isinstance(event, RunEndEvent):
            return RunEndResponse(event=event, done=len(self.past_trajectories) >= 1)
        return EventResponse(event=event)


def test_optimizer_cannot_reach_the_full_trajectory(user_input, tool_output, system_prompt, model_reply):
    secret = Observable(name="internal", domain="system")

    async def main():
        optimizer = Snoop()
        session = OptimizerSession(
            channel=EventChannel(), goal="g", optimizer=optimizer, llm_client=None,
            controllables=[user_input, tool_output, system_prompt], observables=[model_reply, secret],
            scope=Scope.of("user_input", read_only=["model_output"]), send_timeout=5,
        )
        await session.start()
        injected = []
        for _ in range(2):
            await session.run_start()
            injected.append(await session.pre_call(user_input, "hello"))
            injected.append(await session.pre_call(system_prompt, "you are safe"))
            injected.append(await session.post_call(tool_output, "q", "doc"))
            await session.observe(model_reply, "refusal")
            await session.observe(secret, "internal trace")
            done = await session.run_end(Evaluation(success=False))
        await session.shutdown(timeout=5)
        return optimizer, session, injected, done

    optimizer, session, injected, done = arun(main)
    assert done is True
    assert injected == ["evil", None, None] * 2
    full = session.trajectories
    assert [len(t) for t in full] == [5, 5]
    views = optimizer.past_trajectories
    assert all(isinstance(v, FilteredTrajectory) for v in views)
    for view in views:
        assert [type(e.event).__name__ for e in view] == ["ControllablePreCallEvent", "ObservableEvent"]
        assert all(e.event.request == "hello" for e in view if isinstance(e.event, ControllablePreCallEvent))
    # the optimizer was never sent the out-of-scope events
    assert {type(e).__name__ for e in optimizer.events} == {
        "RunStartEvent", "ControllablePreCallEvent", "ObservableEvent", "RunEndEvent"}
    assert all(getattr(e, "controllable", user_input) == user_input for e in optimizer.events)
    assert all(getattr(e, "observable", model_reply) == model_reply for e in optimizer.events)
    # no attribute (or container, or closure) leads from what the optimizer holds to the full record
    assert not any(isinstance(v, Trajectory) for v in vars(views[0]).values())
    assert not _reachable(views[0], Trajectory)
    assert not _reachable(optimizer, Trajectory)
    assert not _reachable(optimizer.events, Trajectory)
