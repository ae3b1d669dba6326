"""The Best-of-N scheduler: keep `concurrency` target requests in flight across goals, judge each
completion as it arrives, and stop issuing samples for a goal once one is judged successful.

Why a scheduler and not Completions-then-Evaluation: with N up to 10,000 per goal, almost all of
the work is saved by stopping a goal at its first success, and that is only possible if verdicts
arrive while samples are still being sent. Goals are served round-robin, so each has only a few
samples in flight and a broken goal wastes at most those (they settle and are recorded).
At most `concurrency` samples wait for the target and at most `2 x concurrency` are outstanding
in all (sent, or answered and being judged): judging overlaps with sending, and a goal broken by
a sample under judgment has at most that many more samples settle after it.

Prefect-free and store-free: it calls `send`, `judge` and `record`, so unit tests drive it with
fakes and `tasks.bon` wires it to the target, the judge panel and the store.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from attacks import AttackPrompt
from tasks.budget import Budget


@dataclass(frozen=True, kw_only=True)
class Judged:
    """The panel's decision on one answer (`successful` already applies rule and threshold)."""

    verdicts: list[Any]
    successful: bool
    decoded: str | None = None  # what the judges read, when decoding changed the answer


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One finished sample: what was sent, what came back and, if it came back, the verdicts."""

    result_id: str
    index: int
    prompt: AttackPrompt
    completion: Any
    judged: Judged | None


@dataclass(kw_only=True)
class GoalStream:
    """One goal's sampling state. `todo` yields the sample indices still to send, in order."""

    result_id: str
    goal: Any
    todo: Iterator[int]
    broken: bool = False
    stop_when_broken: bool = True
    done: bool = False  # stopped: too many target errors
    reported: bool = False
    in_flight: int = 0
    issued: int = 0
    errors: int = 0
    exhausted: bool = False  # every index of `todo` has been issued
    _next_up: int | None = None  # the index read ahead of `todo` (so `exhausted` is known in time)

    @property
    def finished(self) -> bool:
        """Broken, or out of samples with none in flight: nothing more will happen to it."""
        return ((self.broken and self.stop_when_broken)
                or ((self.done or self.exhausted) and self.in_flight == 0))

    def next_index(self) -> int | None:
        if (self.broken and self.stop_when_broken) or self.done or self.exhausted:
            return None
        index, self._next_up = self._next_up, None
        if index is None:
            index = next(self.todo, None)
        if index is None:
            self.exhausted = True
            return None
        # Read one ahead: when this is the last sample the goal is done now, so the sample's own
        # settling reports it finished (not a later round-robin pass that may never come).
        self._next_up = next(self.todo, None)
        self.exhausted = self._next_up is None
        return index


@dataclass(kw_only=True)
class StreamStats:
    requested: int = 0
    errors: int = 0
    judged: int = 0
    goals_broken: int = 0
    goals_stopped_on_errors: int = 0
    cost_usd: float = 0.0
    budget_exhausted: bool = False
    by_goal: dict[str, int] = field(default_factory=dict)  # result_id -> samples sent


SendFn = Callable[[AttackPrompt], Awaitable[Any]]
JudgeFn = Callable[[Any, AttackPrompt, str], Awaitable[Judged]]
SampleFn = Callable[[Any, int], AttackPrompt]
#: Stores a finished sample; may be awaitable (a writer that waits for room: backpressure).
RecordFn = Callable[[Sample], Awaitable[None] | None]


class BestOfNStream:
    """Run the samples of every goal under one concurrency limit (see the module docstring)."""

    def __init__(self, goals: list[GoalStream], *, sample: SampleFn, send: SendFn,
                 judge: JudgeFn, record: RecordFn, concurrency: int,
                 budget: Budget, stop_after_errors: int,
                 on_goal_done: Callable[[], Awaitable[None]] | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._goals = goals
        self._queue = deque(g for g in goals if not (g.broken and g.stop_when_broken))
        self._sample, self._send, self._judge, self._record = sample, send, judge, record
        self._concurrency = concurrency
        self.budget = budget
        self._on_goal_done = on_goal_done
        self._stop_after_errors = stop_after_errors
        self._sending = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._failure: BaseException | None = None
        self.stats = StreamStats()

    def _next(self) -> tuple[GoalStream, int] | None:
        """Round-robin: the next goal that still has samples to send, and its next index."""
        for _ in range(len(self._queue)):
            goal = self._queue.popleft()
            index = goal.next_index()
            if index is not None:
                self._queue.append(goal)
                return goal, index
        return None

    async def run(self) -> StreamStats:
        """Send until every goal is broken, out of samples or stopped; then every in-flight
        sample settles (and is recorded) before this returns or raises."""
        while True:
            while (self._failure is None and self._sending < self._concurrency
                   and len(self._tasks) < 2 * self._concurrency
                   and not self.budget.exhausted and (item := self._next()) is not None):
                self._launch(*item)
            if not self._tasks:
                break
            self._wake.clear()
            await self._wake.wait()
        self.stats.budget_exhausted = self.budget.exhausted
        if self._failure is not None:
            raise self._failure
        await self._report_settled()
        return self.stats

    async def _report_settled(self) -> None:
        """Report the goals that finished without a sample of this run settling them: broken or
        out of samples in an earlier attempt of the step (resume, retry)."""
        for goal in self._goals:
            if self._on_goal_done is not None and goal.finished and not goal.reported:
                goal.reported = True
                await self._on_goal_done()

    def _launch(self, goal: GoalStream, index: int) -> None:
        goal.in_flight += 1
        goal.issued += 1
        self._sending += 1
        self.stats.requested += 1
        self.stats.by_goal[goal.result_id] = self.stats.by_goal.get(goal.result_id, 0) + 1
        task = asyncio.create_task(self._one(goal, index))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
        self._wake.set()

    async def _one(self, goal: GoalStream, index: int) -> None:
        try:
            prompt = self._sample(goal.goal, index)
            completion = await self._send(prompt)
        finally:
            self._sending -= 1
            self._wake.set()  # a target slot is free: issue the next sample while this is judged
        try:
            self.budget.add(completion.cost_usd)
            self.stats.cost_usd += completion.cost_usd
            judged = None
            if completion.error is None:
                judged = await self._judge(goal.goal, prompt, completion.text or "")
                # A judge's call, plus any attacker call that decoded the answer for it.
                self.budget.add(sum(getattr(v, "cost_usd", 0.0)
                                    + getattr(v, "attacker_cost_usd", 0.0)
                                    for v in judged.verdicts))
                self.stats.judged += 1
            stored = self._record(Sample(result_id=goal.result_id, index=index, prompt=prompt,
                                         completion=completion, judged=judged))
            if stored is not None:
                await stored
            self._settle(goal, completion, judged)
        finally:
            goal.in_flight -= 1
        if self._on_goal_done is not None and goal.finished and not goal.reported:
            goal.reported = True
            await self._on_goal_done()

    def _settle(self, goal: GoalStream, completion: Any, judged: Judged | None) -> None:
        if completion.error is not None:
            self.stats.errors += 1
            goal.errors += 1
            if goal.errors >= self._stop_after_errors and not goal.done:
                goal.done = True
                self.stats.goals_stopped_on_errors += 1
        elif judged is not None and judged.successful and not goal.broken:
            goal.broken = True
            self.stats.goals_broken += 1
