"""Many coroutines and threads write traces for different goals (and the same goal) at once."""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import ThreadPoolExecutor

from tracking import SQLBackend, TrackingCoordinator

GOALS = 100
TRACES = 50


def _assert_intact(backend: SQLBackend, coordinator: TrackingCoordinator, per_goal: int) -> None:
    for ctx in coordinator.goal_tracker.contexts:
        traces = backend.list_traces(result_id=ctx.result_id)
        assert [t.sequence for t in traces] == list(range(per_goal)), ctx.goal_index
        assert [t.content["i"] for t in traces] == list(range(per_goal))
        assert {t.content["goal"] for t in traces} == {ctx.goal_index}
        assert ctx.trace_count == per_goal and ctx.last_sequence == per_goal - 1


def test_coroutines_write_traces_concurrently(backend: SQLBackend, run_id: str) -> None:
    coordinator = TrackingCoordinator.create(
        backend,
        run_id,
        goals=[f"goal {i % 10}" for i in range(GOALS)],  # many duplicate texts
    )
    tracker = coordinator.goal_tracker

    async def worker(index: int) -> None:
        ctx = coordinator.get_goal_context(index)
        for i in range(TRACES):
            tracker.add_trace(ctx, "Completion", "COMPLETION", {"goal": index, "i": i})
            if random.random() < 0.3:
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(worker(i) for i in range(GOALS)))

    asyncio.run(main())
    tracker.flush()
    assert len(backend.list_traces(run_id=run_id)) == GOALS * TRACES
    _assert_intact(backend, coordinator, TRACES)
    assert coordinator.get_summary()["tracking_errors"] == {}


def test_threads_write_traces_concurrently(backend: SQLBackend, run_id: str) -> None:
    coordinator = TrackingCoordinator.create(backend, run_id, goals=[f"g{i}" for i in range(GOALS)])
    tracker = coordinator.goal_tracker

    def worker(index: int) -> None:
        ctx = coordinator.get_goal_context(index)
        for i in range(TRACES):
            tracker.add_trace(ctx.result_id, "Completion", "COMPLETION", {"goal": index, "i": i})

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(worker, range(GOALS)))
    coordinator.finalize_all_goals([])
    evaluation_free = [t for t in backend.list_traces(run_id=run_id) if t.step_name != "Evaluation"]
    assert len(evaluation_free) == GOALS * TRACES
    for ctx in tracker.contexts:  # the Evaluation trace comes last, after the 50 completions
        traces = backend.list_traces(result_id=ctx.result_id)
        assert [t.sequence for t in traces] == list(range(TRACES + 1))
        assert [t.content.get("i") for t in traces[:-1]] == list(range(TRACES))
        assert traces[-1].step_name == "Evaluation"


def test_threads_share_one_goal_without_gaps(backend: SQLBackend, run_id: str) -> None:
    coordinator = TrackingCoordinator.create(backend, run_id, goals=["shared"])
    ctx = coordinator.get_goal_context(0)
    threads, per_thread = 8, 100
    barrier = threading.Barrier(threads)

    def worker(worker_id: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            coordinator.goal_tracker.add_trace(ctx, "t", "T", {"w": worker_id, "i": i})

    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    coordinator.goal_tracker.flush()
    traces = backend.list_traces(result_id=ctx.result_id)
    assert [t.sequence for t in traces] == list(range(threads * per_thread))
    for worker_id in range(threads):  # each writer's own order is preserved
        mine = [t.content["i"] for t in traces if t.content["w"] == worker_id]
        assert mine == list(range(per_thread))


def test_step_tracking_concurrent_with_goal_traces(backend: SQLBackend, run_id: str) -> None:
    coordinator = TrackingCoordinator.create(backend, run_id, goals=[f"g{i}" for i in range(20)])

    async def goal(index: int) -> None:
        for i in range(20):
            coordinator.goal_tracker.add_trace(
                coordinator.get_goal_context(index), "c", "C", {"goal": index, "i": i}
            )
            await asyncio.sleep(0)

    async def main() -> None:
        with coordinator.step_tracker.track_step("Completions", "STEP2"):
            await asyncio.gather(*(goal(i) for i in range(20)))

    asyncio.run(main())
    coordinator.finalize_all_goals([], include_evaluation_trace=False)
    _assert_intact(backend, coordinator, 20)
    (step,) = backend.list_traces(run_id=run_id, run_level_only=True)
    assert step.content["status"] == "COMPLETED"


def test_two_stores_on_one_database(store_url: str) -> None:
    """Two backends (as two worker processes would have) write the same run at once."""
    first, second = SQLBackend(store_url), SQLBackend(store_url)
    run_id = first.create_run(attack_type="t")
    coordinators = [
        TrackingCoordinator.create(
            store, run_id, goals=[f"g{i}" for i in range(10)], goal_index_start=offset
        )
        for store, offset in ((first, 0), (second, 10))
    ]

    def worker(coordinator: TrackingCoordinator) -> None:
        for i in range(200):
            for ctx in coordinator.goal_tracker.contexts:
                coordinator.goal_tracker.add_trace(ctx, "t", "T", {"goal": ctx.goal_index, "i": i})
        coordinator.goal_tracker.flush()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(worker, coordinators))
    for coordinator in coordinators:
        assert coordinator.get_summary()["tracking_errors"] == {}
        _assert_intact(first, coordinator, 200)
    first.close()
    second.close()
