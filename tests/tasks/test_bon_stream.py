"""The Best-of-N scheduler with fake target and judge: early stop, concurrency, errors, budget."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from attacks import build_technique
from goals import Goal
from tasks.bon_stream import BestOfNStream, GoalStream, Judged, Sample
from tasks.budget import Budget


@dataclass(frozen=True)
class FakeCompletion:
    text: str | None
    error: str | None = None
    cost_usd: float = 0.01


class FakeTarget:
    """Answers after a yield; breaks goal `g` at sample index `breaks[g]` (if any)."""

    def __init__(self, breaks: dict[str, int], errors: set[tuple[str, int]] = frozenset()) -> None:
        self.breaks, self.errors = breaks, errors
        self.sent: list[tuple[str, int]] = []
        self.in_flight = self.max_in_flight = 0

    async def send(self, prompt: Any) -> FakeCompletion:
        key = (prompt.metadata["goal_id"], prompt.metadata["sample"])
        self.sent.append(key)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        if key in self.errors:
            return FakeCompletion(text=None, error="503 after retries")
        hit = self.breaks.get(key[0]) == key[1]
        return FakeCompletion(text="HARMFUL" if hit else "no")

    async def judge(self, goal: Any, prompt: Any, response: str) -> Judged:
        await asyncio.sleep(0)
        return Judged(verdicts=[], successful=response == "HARMFUL")


def _todo(n: int, skip: set[int]) -> Any:
    return (k for k in range(n) if k not in skip)


def streams(n: int, goals: int, done: dict[str, set[int]] | None = None) -> list[GoalStream]:
    out = []
    for i in range(goals):
        goal = Goal(id=f"g{i}", index=i, text=f"goal number {i} text")
        skip = (done or {}).get(goal.id, set())
        out.append(GoalStream(result_id=f"r{i}", goal=goal, todo=_todo(n, skip)))
    return out


def run(target: FakeTarget, goal_streams: list[GoalStream], *, n: int, concurrency: int = 4,
        budget: float | None = None, stop_after_errors: int = 10) -> tuple[Any, list[Sample]]:
    technique = build_technique("bon", {"n": n})
    recorded: list[Sample] = []
    stream = BestOfNStream(goal_streams, sample=technique.sample, send=target.send,
                           judge=target.judge, record=recorded.append, concurrency=concurrency,
                           budget=Budget(limit_usd=budget), stop_after_errors=stop_after_errors)
    return asyncio.run(stream.run()), recorded


def test_goals_stop_at_their_first_success() -> None:
    target = FakeTarget(breaks={"g0": 2, "g1": 30})
    stats, recorded = run(target, streams(100, 3), n=100, concurrency=4)
    sent = {g: [k for gg, k in target.sent if gg == g] for g in ("g0", "g1", "g2")}
    # Round robin over 3 goals with 4 in flight: at most a few samples past the break settle.
    assert max(sent["g0"]) <= 2 + 4 and len(sent["g0"]) <= 2 + 1 + 4
    assert max(sent["g1"]) <= 30 + 4
    assert sent["g2"] == list(range(100))  # never broken: all N, in order
    assert stats.goals_broken == 2 and stats.requested == len(target.sent) == len(recorded)
    assert target.max_in_flight <= 4
    assert {(s.result_id, s.index) for s in recorded} == {
        (f"r{g[1:]}", k) for g, k in target.sent}


def test_concurrency_is_used_across_goals() -> None:
    target = FakeTarget(breaks={})
    stats, _ = run(target, streams(20, 8), n=20, concurrency=8)
    assert target.max_in_flight == 8 and stats.requested == 160


def test_already_recorded_samples_are_not_resent_and_broken_goals_skipped() -> None:
    target = FakeTarget(breaks={})
    goal_streams = streams(10, 2, done={"g0": {0, 1, 2, 5}})
    goal_streams[1].broken = True
    stats, _ = run(target, goal_streams, n=10)
    assert sorted(target.sent) == [("g0", k) for k in (3, 4, 6, 7, 8, 9)]


def test_errors_are_recorded_not_judged_and_stop_a_goal() -> None:
    target = FakeTarget(breaks={"g1": 1}, errors={("g0", k) for k in range(50)} | {("g1", 0)})
    stats, recorded = run(target, streams(50, 2), n=50, concurrency=1, stop_after_errors=3)
    assert [k for g, k in target.sent if g == "g0"] == [0, 1, 2]
    assert stats.errors == 4 and stats.goals_stopped_on_errors == 1 and stats.goals_broken == 1
    errored = [s for s in recorded if s.completion.error]
    assert len(errored) == 4 and all(s.judged is None for s in errored)


def test_budget_stops_new_samples() -> None:
    target = FakeTarget(breaks={})
    stats, _ = run(target, streams(1000, 2), n=1000, concurrency=2, budget=0.1)
    assert stats.budget_exhausted
    assert 10 <= stats.requested <= 10 + 2  # $0.01 each; in-flight ones settle


def test_a_failing_judge_fails_the_run_after_in_flight_samples_settle() -> None:
    target = FakeTarget(breaks={})

    async def judge(goal: Any, prompt: Any, response: str) -> Judged:
        if prompt.metadata["sample"] == 3:
            raise RuntimeError("judge bug")
        await asyncio.sleep(0.002)
        return Judged(verdicts=[], successful=False)

    target.judge = judge  # type: ignore[method-assign]  # a fake judge, patched on purpose
    with pytest.raises(RuntimeError, match="judge bug"):
        run(target, streams(100, 1), n=100, concurrency=4)
    assert len(target.sent) < 100  # nothing new is issued once a sample failed


def test_slow_judging_bounds_outstanding_samples_to_twice_the_concurrency() -> None:
    target = FakeTarget(breaks={"g0": 0})
    state = {"judging": 0, "max": 0}

    async def slow_judge(goal: Any, prompt: Any, response: str) -> Judged:
        state["judging"] += 1
        state["max"] = max(state["max"], state["judging"] + target.in_flight)
        await asyncio.sleep(0.01)
        state["judging"] -= 1
        return Judged(verdicts=[], successful=response == "HARMFUL")

    target.judge = slow_judge  # type: ignore[method-assign]  # a fake judge, patched on purpose
    stats, _ = run(target, streams(200, 1), n=200, concurrency=3)
    assert state["max"] <= 6
    # Broken by its very first sample: only what was outstanding meanwhile was sent.
    assert stats.goals_broken == 1 and stats.requested <= 6


def test_without_early_stop_every_goal_gets_all_n() -> None:
    target = FakeTarget(breaks={"g0": 1, "g1": 3})
    goal_streams = streams(20, 2)
    for g in goal_streams:
        g.stop_when_broken = False
    stats, _ = run(target, goal_streams, n=20)
    assert stats.requested == 40 and stats.goals_broken == 2


@pytest.mark.parametrize("early_stop", [True, False])
def test_every_goal_is_reported_finished_exactly_once(early_stop: bool) -> None:
    """The step's progress counts goals: each must be reported once it can do nothing more —
    when its last sample settles (with N=2 and spare concurrency the round robin never comes
    back to it), or, already broken or fully sampled by an earlier attempt, at the end."""
    target = FakeTarget(breaks={"g0": 0})
    goal_streams = streams(2, 5, done={"g3": {0, 1}})
    for g in goal_streams:
        g.stop_when_broken = early_stop
    goal_streams[4].broken = True  # broken in an earlier attempt of the step
    reported: list[int] = []

    async def on_done() -> None:
        reported.append(1)

    technique = build_technique("bon", {"n": 2})
    stream = BestOfNStream(goal_streams, sample=technique.sample, send=target.send,
                           judge=target.judge, record=lambda s: None, concurrency=8,
                           budget=Budget(limit_usd=None), stop_after_errors=10,
                           on_goal_done=on_done)
    asyncio.run(stream.run())
    assert len(reported) == 5
    assert all(g.reported and g.finished for g in goal_streams)
