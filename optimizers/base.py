"""The Optimizer base class: the attacker actor of spec 004.

An optimizer lives for one goal across all its runs: one `initialize`, one `run(channel)` task
consuming every RunStart/.../RunEnd cycle, one `teardown`. Subclasses override `on_event`
(and `run` to choose a consumption model); `_dispatch` keeps the trajectory bookkeeping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from optimizers.domains import Controllable, Observable
from optimizers.events import Event, EventResponse, RunEndEvent, RunStartEvent
from optimizers.trajectory import ReadableTrajectory

if TYPE_CHECKING:
    from optimizers.channel import EventChannel, EventEnvelope
    from optimizers.llm import LLMClient


class Optimizer:
    """Base class. `initialize` and `teardown` may be overridden as sync or async methods:
    the controller awaits them when they return an awaitable."""

    def __init__(self) -> None:
        self._llm: LLMClient | None = None
        self._goal: str | None = None
        self._controllables: tuple[Controllable, ...] = ()
        self._observables: tuple[Observable, ...] = ()
        self._current_trajectory: ReadableTrajectory | None = None
        self._past_trajectories: list[ReadableTrajectory] = []

    # -- lifecycle -----------------------------------------------------------------------------
    def initialize(
        self,
        goal: str,
        controllables: Sequence[Controllable],
        observables: Sequence[Observable],
        llm_client: LLMClient | None,
    ) -> Any:
        """Store the goal, the points the optimizer may act on and the constrained LLM client."""
        self._goal = goal
        self._controllables = tuple(controllables)
        self._observables = tuple(observables)
        self._llm = llm_client

    async def on_event(self, event: Event) -> EventResponse:
        """Answer one event. Required."""
        raise NotImplementedError(f"{type(self).__name__} must implement on_event()")

    async def run(self, channel: EventChannel) -> None:
        """Default consumption: sequential, one event at a time, until the channel closes."""
        async for envelope in channel:
            await self._dispatch(envelope)

    def teardown(self) -> Any:
        """Release resources. Default: nothing to release."""

    # -- state ---------------------------------------------------------------------------------
    @property
    def llm(self) -> LLMClient:
        if self._llm is None:
            raise RuntimeError(
                "no LLM client: call super().initialize(...) first (or the controller gave none)"
            )
        return self._llm

    @property
    def goal(self) -> str:
        if self._goal is None:
            raise RuntimeError("not initialized: call super().initialize(...) first")
        return self._goal

    @property
    def controllables(self) -> tuple[Controllable, ...]:
        return self._controllables

    @property
    def observables(self) -> tuple[Observable, ...]:
        return self._observables

    @property
    def current_trajectory(self) -> ReadableTrajectory | None:
        """The active run's trajectory (a scoped FilteredTrajectory from the controller); None between runs."""
        return self._current_trajectory

    @property
    def past_trajectories(self) -> list[ReadableTrajectory]:
        """Completed runs, oldest first (a copy: appending to it changes nothing)."""
        return list(self._past_trajectories)

    # -- dispatch ------------------------------------------------------------------------------
    def _archive_current(self) -> None:
        if self._current_trajectory is not None:
            self._past_trajectories.append(self._current_trajectory)
        self._current_trajectory = None

    async def _dispatch(self, envelope: EventEnvelope) -> None:
        """on_event + trajectory bookkeeping + answer. On failure: reject the envelope, re-raise."""
        event = envelope.event
        if isinstance(event, RunStartEvent):
            self._current_trajectory = event.trajectory
        try:
            response = await self.on_event(event)
        except BaseException as exc:
            if isinstance(event, RunEndEvent):
                self._archive_current()
            envelope.reject(exc)  # the sender must not hang; non-Exceptions are wrapped
            raise
        if isinstance(event, RunEndEvent):
            self._archive_current()
        envelope.respond(response)  # an invalid response rejects the envelope and raises here
