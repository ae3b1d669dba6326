"""Controller side of the actor pair: run the optimizer, and talk to it from the target's code.

`run_optimizer_actor` is the whole life of an optimizer (initialize, run, teardown) and is what
an optimizer Prefect task should await. `OptimizerSession` is what the target-execution side
uses: it turns "the target is about to read the user turn" into a channel round-trip, applies
the scope, records the trajectory, and on shutdown makes sure nobody is left waiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from optimizers.base import Optimizer
from optimizers.channel import EventChannel
from optimizers.domains import Controllable, Observable, Scope
from optimizers.errors import OptimizerExitedError, OptimizerFailedError
from optimizers.events import (
    ControllableInjection,
    ControllablePostCallEvent,
    ControllablePreCallEvent,
    ObservableEvent,
    RunEndEvent,
    RunEndResponse,
    RunStartEvent,
)
from optimizers.llm import LLMClient
from optimizers.middleware import Middleware, compose, recording, scoped
from optimizers.trajectory import Trajectory

log = logging.getLogger(f"siegeflow.{__name__}")  # under "siegeflow": reaches run logs


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def run_optimizer_actor(
    optimizer: Optimizer,
    channel: EventChannel,
    *,
    goal: str,
    controllables: Sequence[Controllable],
    observables: Sequence[Observable],
    llm_client: LLMClient | None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """initialize → run(channel) → teardown, in the caller's loop and thread.

    If anything raises, the channel is poisoned with that error before it propagates, so no
    `send` on the target side can wait forever. If `run()` returns while the channel is still
    open or events are unanswered, the channel is poisoned with OptimizerExitedError.
    """
    try:
        await _maybe_await(optimizer.initialize(goal, list(controllables), list(observables), llm_client))
        if on_ready is not None:
            on_ready()
        await optimizer.run(channel)
    except BaseException as exc:
        channel.set_error(exc)
        try:
            await _maybe_await(optimizer.teardown())
        except Exception:  # the run's own error is the one to surface; keep this one in the log
            log.exception("optimizer teardown failed after the optimizer had already failed")
        raise
    if not channel.closed or channel.pending:
        channel.set_error(OptimizerExitedError(
            f"{type(optimizer).__name__}.run() returned with the channel open or events unanswered"
        ))
    await _maybe_await(optimizer.teardown())


class OptimizerSession:
    """One goal's optimizer as seen from the target side: one channel, one actor, many runs.

    Use `start()` to run the optimizer here (a task of the current loop, or `in_thread=True` for
    its own thread and loop). When the optimizer runs elsewhere (e.g. its own Prefect task
    awaiting `run_optimizer_actor` on the same channel), skip `start()`; `shutdown()` then only
    closes the channel and the caller waits for that task itself.
    """

    def __init__(
        self,
        *,
        channel: EventChannel,
        goal: str,
        controllables: Sequence[Controllable],
        observables: Sequence[Observable] = (),
        scope: Scope,
        optimizer: Optimizer | None = None,
        llm_client: LLMClient | None = None,
        send_timeout: float | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self._channel = channel
        self._goal = goal
        self._controllables = tuple(controllables)
        self._observables = tuple(observables)
        self._scope = scope
        self._optimizer = optimizer
        self._llm_client = llm_client
        self._send = compose(
            functools.partial(channel.send, timeout=send_timeout),
            recording(lambda: self._trajectory),
            *middleware,
            scoped(scope),
        )
        self._trajectory: Trajectory | None = None
        self._trajectories: list[Trajectory] = []
        self._done = False
        self._actor: asyncio.Future[None] | concurrent.futures.Future[None] | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def channel(self) -> EventChannel:
        return self._channel

    @property
    def done(self) -> bool:
        """True once the optimizer answered a RunEndEvent with done=True."""
        return self._done

    @property
    def current_trajectory(self) -> Trajectory | None:
        return self._trajectory

    @property
    def trajectories(self) -> list[Trajectory]:
        """Full (unfiltered) trajectories of the finished runs, oldest first."""
        return list(self._trajectories)

    # -- actor ---------------------------------------------------------------------------------
    async def start(self, *, in_thread: bool = False, timeout: float | None = 60.0) -> None:
        """Launch the optimizer and return once its `initialize` completed (its failure raises here)."""
        if self._optimizer is None:
            raise RuntimeError("start() needs an optimizer; without one the actor runs elsewhere")
        if self._actor is not None:
            raise RuntimeError("one run() per goal: this session already started its optimizer")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        actor = functools.partial(
            run_optimizer_actor, self._optimizer, self._channel, goal=self._goal,
            controllables=self._controllables, observables=self._observables,
            llm_client=self._llm_client, on_ready=lambda: ready.set_result(None),
        )
        if in_thread:
            self._actor = _start_thread(actor)
        else:
            self._actor = asyncio.ensure_future(actor())
        actor_future = self._loop_future()
        ready_future = asyncio.wrap_future(ready)
        await asyncio.wait({ready_future, actor_future}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if ready_future.done():
            return
        ready_future.cancel()
        if actor_future.done():
            await self._raise_if_failed(actor_future)
            raise OptimizerFailedError("the optimizer actor returned before it was ready")
        self._channel.set_error(OptimizerFailedError("optimizer initialize() timed out"))
        raise OptimizerFailedError(f"optimizer initialize() did not finish within {timeout}s")

    def _loop_future(self) -> asyncio.Future[None]:
        assert self._actor is not None
        if isinstance(self._actor, concurrent.futures.Future):
            return asyncio.wrap_future(self._actor)
        return self._actor

    async def _raise_if_failed(self, actor: asyncio.Future[None]) -> None:
        if actor.cancelled():
            raise OptimizerFailedError("the optimizer actor was cancelled")
        error = actor.exception()
        if error is not None:
            raise OptimizerFailedError(f"the optimizer failed: {error!r}") from error

    async def shutdown(self, *, timeout: float = 30.0) -> None:
        """Close the channel, wait for the actor (run + teardown), surface its failure.

        Raises OptimizerFailedError (from the original error) if the actor crashed, or if it did
        not stop within `timeout` (then the channel is poisoned and a local task cancelled).
        """
        self._channel.close()
        if self._actor is None:
            return
        actor = self._loop_future()
        done, _ = await asyncio.wait({actor}, timeout=timeout)
        if not done:
            self._channel.set_error(OptimizerFailedError("optimizer did not stop after close()"))
            if isinstance(self._actor, asyncio.Future):
                self._actor.cancel()
                await asyncio.wait({actor}, timeout=min(timeout, 5.0))
            raise OptimizerFailedError(f"the optimizer did not stop within {timeout}s of close()")
        await self._raise_if_failed(actor)

    # -- target side ---------------------------------------------------------------------------
    def _active(self) -> Trajectory:
        if self._trajectory is None:
            raise RuntimeError("no active run: call run_start() first")
        return self._trajectory

    def _check_controllable(self, controllable: Controllable) -> None:
        if controllable not in self._controllables:
            raise ValueError(f"{controllable!r} was not declared to this session")

    async def run_start(self, trajectory: Trajectory | None = None) -> Trajectory:
        """Begin a run; the optimizer gets RunStartEvent with the run's scoped view."""
        if self._trajectory is not None:
            raise RuntimeError("a run is already active: call run_end() first")
        if self._done:
            raise RuntimeError("the optimizer already answered done=True")
        if trajectory is None:
            trajectory = Trajectory(goal=self._goal, run_index=len(self._trajectories))
        self._trajectory = trajectory
        try:
            await self._send(RunStartEvent(trajectory=trajectory.view(self._scope)))
        except BaseException:
            self._trajectory = None
            raise
        return trajectory

    async def pre_call(self, controllable: Controllable, request: Any) -> Any | None:
        """The value to use instead of `request`, or None to use `request` unchanged."""
        self._active()
        self._check_controllable(controllable)
        response = await self._send(ControllablePreCallEvent(controllable=controllable, request=request))
        return response.value if isinstance(response, ControllableInjection) else None

    async def post_call(self, controllable: Controllable, request: Any, response: Any) -> Any | None:
        """The value to use instead of `response`, or None to keep it."""
        self._active()
        self._check_controllable(controllable)
        answer = await self._send(
            ControllablePostCallEvent(controllable=controllable, request=request, response=response)
        )
        return answer.value if isinstance(answer, ControllableInjection) else None

    async def observe(self, observable: Observable, value: Any) -> None:
        self._active()
        if observable not in self._observables:
            raise ValueError(f"{observable!r} was not declared to this session")
        await self._send(ObservableEvent(observable=observable, value=value))

    async def run_end(self, evaluation: Any) -> bool:
        """Persist the RunEndEvent in the trajectory, tell the optimizer, return its done flag.

        The run is archived controller-side even when the optimizer fails on this event.
        """
        trajectory = self._active()
        event = RunEndEvent(evaluation=evaluation)
        trajectory.finish(event)
        self._trajectories.append(trajectory)
        self._trajectory = None
        response = await self._send(event)
        assert isinstance(response, RunEndResponse)  # the channel validates the response kind
        self._done = response.done
        return response.done


def _start_thread(actor: Callable[[], Any]) -> concurrent.futures.Future[None]:
    """Run the actor under its own asyncio.run() in a daemon thread (a hung optimizer cannot
    block interpreter exit)."""
    result: concurrent.futures.Future[None] = concurrent.futures.Future()

    def body() -> None:
        try:
            asyncio.run(actor())
        except BaseException as exc:  # noqa: BLE001 - handed to the session, raised in shutdown()
            result.set_exception(exc)
        else:
            result.set_result(None)

    threading.Thread(target=body, name="optimizer-actor", daemon=True).start()
    return result
