"""Tracking fails gracefully: the attack goes on, failures are counted and logged once per kind."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import sqlalchemy as sa

from tracking import (
    EvaluationStatusEnum,
    SQLBackend,
    StatusEnum,
    TrackingCoordinator,
    TrackingErrors,
)
from tracking.engine import make_engine

SECRET = "hunter2-secret-value"


class BrokenStore:
    """Every store method raises, as an unreachable database would."""

    def __getattr__(self, name: str):
        def fail(*args, **kwargs):
            raise ConnectionError(f"store unreachable at postgresql://u:{SECRET}@db/x ({name})")

        return fail


def _tracking_warnings(caplog) -> Counter:
    return Counter(
        r.getMessage().split(" failed ")[0].removeprefix("tracking: ")
        for r in caplog.records
        if r.getMessage().startswith("tracking: ")
    )


def _run_attack(coordinator: TrackingCoordinator) -> None:
    """A whole attack as a flow would drive it."""
    tracker = coordinator.goal_tracker
    with coordinator.step_tracker.track_step("Generation", "STEP1", input_data={"n": [1, 2]}):
        coordinator.step_tracker.add_step_metadata("prompts", 2)
    rows = [
        {"goal": "a", "goal_index": 0, "success": True},
        {"goal": "b", "goal_index": 1, "success": False},
    ]
    coordinator.enrich_with_result_ids(rows)
    for _ in range(5):
        tracker.add_trace(coordinator.get_goal_context(0), "Completion", "COMPLETION", {"x": 1})
    coordinator.finalize_all_goals(rows)
    coordinator.finalize_pipeline(rows)
    coordinator.log_summary()


def test_broken_store_does_not_stop_the_attack(caplog) -> None:
    logger = logging.getLogger("test.degrade")
    with caplog.at_level(logging.WARNING, logger="test.degrade"):
        coordinator = TrackingCoordinator.create(
            BrokenStore(), "run-1", logger=logger, goals=["a", "b"]
        )
        _run_attack(coordinator)
        coordinator.finalize_on_error("again")
        assert (
            coordinator.step_tracker.update_result_status(EvaluationStatusEnum.FAILED_JAILBREAK)
            is False
        )
    summary = coordinator.get_summary()
    errors = summary["tracking_errors"]
    assert errors["update_run"] == 2 and errors["create_results"] == 1  # create + finalize
    assert errors["step_trace"] == 2  # start and end of the step
    # in memory the attack's outcome is intact
    assert summary["successful"] == 1 and summary["failed"] == 1 and summary["asr"] == 0.5
    assert summary["status"] == "COMPLETED"
    assert (
        coordinator.get_goal_context(0).evaluation_status
        is EvaluationStatusEnum.SUCCESSFUL_JAILBREAK
    )
    warnings = _tracking_warnings(caplog)
    assert set(warnings) == set(errors) and set(warnings.values()) == {1}  # once per kind
    assert SECRET not in caplog.text


def test_step_exception_still_propagates_with_broken_store() -> None:
    coordinator = TrackingCoordinator.create(BrokenStore(), "run-1", goals=["a"])
    with pytest.raises(ZeroDivisionError):
        with coordinator.step_tracker.track_step("Completions", "STEP2"):
            1 / 0  # noqa: B018 - raises on purpose
    coordinator.finalize_on_error("crashed")
    assert (
        coordinator.get_goal_context(0).evaluation_status
        is EvaluationStatusEnum.ERROR_TEST_FRAMEWORK
    )
    assert coordinator.get_summary()["status"] == "FAILED"


def test_failing_event_bus_is_counted_and_logged_once(
    backend: SQLBackend, run_id: str, caplog
) -> None:
    calls = []

    def bus(name: str, payload: dict) -> None:
        calls.append(name)
        raise RuntimeError("bus down")

    with caplog.at_level(logging.WARNING, logger="siegeflow.tracking"):
        coordinator = TrackingCoordinator.create(backend, run_id, goals=["a", "b"], event_bus=bus)
        _run_attack(coordinator)
    assert coordinator.get_summary()["tracking_errors"] == {"event_bus": len(calls)}
    assert len(calls) >= 7
    assert _tracking_warnings(caplog) == {"event_bus": 1}
    assert backend.get_run(run_id).status is StatusEnum.COMPLETED  # the store still worked


def test_event_bus_must_be_usable() -> None:
    with pytest.raises(TypeError):
        TrackingCoordinator.create(None, None, event_bus=object())


def test_database_becomes_unreachable_mid_run(tmp_path, caplog) -> None:
    backend = SQLBackend(f"sqlite:///{tmp_path / 'lost.db'}")
    run_id = backend.create_run(attack_type="t")
    coordinator = TrackingCoordinator.create(backend, run_id, goals=["a", "b"])
    good_engine = backend.engine
    backend.engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    with caplog.at_level(logging.WARNING, logger="siegeflow.tracking"):
        _run_attack(coordinator)
    errors = coordinator.get_summary()["tracking_errors"]
    assert errors["trace_write"] >= 5  # the queued traces that could not be written
    assert errors["update_results"] == 1 and errors["step_trace"] >= 1
    assert coordinator.get_summary()["successful"] == 1
    backend.engine.dispose()
    backend.engine = good_engine
    backend.close()


def test_errors_never_swallow_base_exceptions() -> None:
    errors = TrackingErrors()

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        errors.call("x", interrupted)
    assert errors.call("y", lambda: 1 / 0, default="fallback") == "fallback"
    assert errors.counts == {"y": 1} and errors.total == 1


def test_writer_failure_is_counted_as_trace_write(backend: SQLBackend, run_id: str) -> None:
    coordinator = TrackingCoordinator.create(backend, run_id, goals=["a"])
    ctx = coordinator.get_goal_context(0)
    table = sa.table(
        "traces",
        sa.column("result_id"),
        sa.column("sequence"),
        sa.column("run_id"),
        sa.column("step_name"),
        sa.column("step_type"),
        sa.column("created_at"),
    )
    with backend.engine.begin() as conn:  # another writer took sequence 1 of this goal
        conn.execute(
            table.insert().values(
                result_id=ctx.result_id,
                sequence=1,
                run_id=run_id,
                step_name="intruder",
                step_type="X",
                created_at=sa.func.current_timestamp(),
            )
        )
    for i in range(3):
        coordinator.goal_tracker.add_trace(ctx, "c", "C", {"i": i})
    coordinator.finalize_all_goals([{"goal_index": 0, "success": False}])
    assert coordinator.get_summary()["tracking_errors"] == {"trace_write": 1}
    steps = [t.step_name for t in backend.list_traces(result_id=ctx.result_id)]
    assert steps == ["c", "intruder", "c", "Evaluation"]
