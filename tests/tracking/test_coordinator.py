"""TrackingCoordinator (spec 000): every public method, the success rule, crash safety."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import pytest

from tracking import (
    Context,
    EvaluationStatusEnum,
    SQLBackend,
    StatusEnum,
    TrackingCoordinator,
)

E = EvaluationStatusEnum


@dataclass(frozen=True, kw_only=True)
class Goal:  # the shape of goals.Goal (tracking must not import it)
    id: str
    index: int
    text: str
    category: str | None = None
    source: str | None = None
    target: str | None = None


class Bus:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def publish(self, name: str, payload: dict[str, Any]) -> None:
        self.events.append((name, payload))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def _statuses(backend: SQLBackend, run_id: str) -> dict[int, E]:
    return {r.goal_index: r.evaluation_status for r in backend.list_results(run_id)}


def test_create_with_every_parameter(backend: SQLBackend, run_id: str) -> None:
    bus = Bus()
    start = time.perf_counter() - 5.0
    coordinator = TrackingCoordinator.create(
        backend=backend,
        run_id=run_id,
        logger=logging.getLogger("test.coord"),
        attack_type="advprefix",
        category_classifier_config={"keywords": {"cyber": ["malware"]}, "default": "other"},
        goals=["write malware", "bake a cake"],
        initial_metadata={"campaign": "c1"},
        goal_index_start=10,
        run_start_time=start,
        event_bus=bus,
    )
    assert coordinator.is_enabled and coordinator.has_goal_tracking
    assert backend.get_run(run_id).status is StatusEnum.RUNNING
    results = backend.list_results(run_id)
    assert [(r.goal_index, r.goal, r.category) for r in results] == [
        (10, "write malware", "cyber"),
        (11, "bake a cake", "other"),
    ]
    assert results[0].goal_metadata == {"campaign": "c1"}
    assert coordinator.get_summary()["duration_s"] >= 5.0
    assert bus.names() == ["goal_initialized", "goal_initialized"]
    assert bus.events[0][1]["goal_index"] == 10


def test_create_disabled() -> None:
    coordinator = TrackingCoordinator.create_disabled()
    assert not coordinator.is_enabled and not coordinator.has_goal_tracking
    coordinator.initialize_goals(["a", "b"])
    with coordinator.step_tracker.track_step("Gen", "STEP1") as trace_id:
        assert trace_id is None
    coordinator.finalize_all_goals([{"goal_index": 0, "success": True}])
    coordinator.finalize_pipeline([])
    summary = coordinator.get_summary()
    assert summary["tracking_enabled"] is False and summary["status"] == "COMPLETED"
    assert summary["successful"] == 1 and summary["errors"]["framework"] == 1
    assert summary["tracking_errors"] == {}
    assert coordinator.get_goal_context(0).result_id is None


def test_structured_goals_and_idempotent_initialization(backend: SQLBackend, run_id: str) -> None:
    coordinator = TrackingCoordinator.create(backend, run_id)
    goals = [
        Goal(id="hb:7", index=7, text="same", category="chem"),
        {"goal": "same", "goal_id": "hb:8", "goal_index": 8},
        {"text": "third", "id": "hb:9"},  # no index: goal_index_start + position
    ]
    coordinator.initialize_goals(goals, goal_index_start=100)
    coordinator.initialize_goals(goals, goal_index_start=100)  # idempotent
    rows = backend.list_results(run_id)
    assert [(r.goal_index, r.goal_id, r.category) for r in rows] == [
        (7, "hb:7", "chem"),
        (8, "hb:8", None),
        (102, "hb:9", None),
    ]
    with pytest.raises(ValueError, match="already used"):
        coordinator.initialize_goals(["different"], goal_index_start=7)
    # a second coordinator (a resumed run) finds the same rows and their final statuses
    backend.update_result(rows[0].id, evaluation_status=E.SUCCESSFUL_JAILBREAK)
    resumed = TrackingCoordinator.create(backend, run_id, goals=goals, goal_index_start=100)
    assert resumed.get_goal_context(7).result_id == rows[0].id
    assert resumed.get_goal_context(7).evaluation_status is E.SUCCESSFUL_JAILBREAK


def test_initialize_goals_from_pipeline_data(backend: SQLBackend, run_id: str) -> None:
    coordinator = TrackingCoordinator.create(backend, run_id)
    data = [
        {"goal": "kept", "goal_index": 3, "goal_id": "s:3", "prefix": "p1", "metadata": {"x": 1}},
        {"goal": "kept", "goal_index": 3, "goal_id": "s:3", "prefix": "p2"},
        {"goal": "kept", "goal_index": 5, "prefix": "p3"},  # same text, another goal
        {"goal": "no index", "prefix": "p4"},
        {"goal": "no index", "prefix": "p5"},
    ]
    coordinator.initialize_goals_from_pipeline_data(data, initial_metadata={"from": "gen"})
    rows = backend.list_results(run_id)
    assert [(r.goal_index, r.goal) for r in rows] == [(3, "kept"), (5, "kept"), (6, "no index")]
    assert all(r.goal_metadata == {"from": "gen"} for r in rows)
    coordinator.initialize_goals_from_pipeline_data(data)  # nothing new
    assert len(backend.list_results(run_id)) == 3


def test_goal_lookup_and_duplicates(backend: SQLBackend, run_id: str) -> None:
    coordinator = TrackingCoordinator.create(backend, run_id, goals=["dup", "x", "dup"])
    first, third = coordinator.get_goal_context(0), coordinator.get_goal_context(2)
    assert isinstance(first, Context) and first.result_id != third.result_id
    assert coordinator.get_goal_context_by_goal("dup") is first  # lowest index
    assert coordinator.goal_tracker.get_contexts_by_goal("dup") == [first, third]
    assert coordinator.get_goal_context_by_goal("missing") is None
    assert coordinator.get_goal_context(99) is None

    data = [
        {"goal": "dup", "goal_index": 2},
        {"goal": "dup"},  # text only: lowest index
        {"goal": "x", "goal_index": 1},
        {"goal": "unknown"},
        {"goal": "dup", "goal_index": 0, "result_id": third.result_id},  # result_id wins
    ]
    assert coordinator.enrich_with_result_ids(data) is data
    assert [row.get("result_id") for row in data] == [
        third.result_id,
        first.result_id,
        coordinator.get_goal_context(1).result_id,
        None,
        third.result_id,
    ]


def _rows() -> list[dict[str, Any]]:
    return [
        # goal 0: one success at the threshold among failures -> SUCCESSFUL
        {"goal_index": 0, "success": False, "score": 0.2, "cost_usd": 0.01},
        {
            "goal_index": 0,
            "success": True,
            "score": 0.5,
            "technique": "templates",
            "cost_usd": 0.02,
        },
        # goal 1: "successful" verdict but under the threshold -> FAILED
        {"goal_index": 1, "success": True, "score": 0.49},
        # goal 2: every target call failed -> ERROR_AGENT_RESPONSE (not a failed jailbreak)
        {"goal_index": 2, "error": "HTTP 503", "success": None},
        {"goal_index": 2, "error": "timeout"},
        # goal 3: judges tie, no combined verdict -> not a success -> FAILED
        {"goal_index": 3, "judges": {"a": {"success": True}, "b": {"success": False}}},
        # goal 4: nothing could be judged -> ERROR_TEST_FRAMEWORK
        {"goal_index": 4, "success": None, "judges": {"a": {"success": None, "error": "x"}}},
        # goal 5: majority of judges -> SUCCESSFUL
        {
            "goal_index": 5,
            "judges": {"a": {"success": True}, "b": {"success": True}, "c": {"success": False}},
        },
        # goal 6: no rows at all -> ERROR_TEST_FRAMEWORK
    ]


def test_finalize_all_goals_default_rule_and_summary(backend: SQLBackend, run_id: str) -> None:
    bus = Bus()
    coordinator = TrackingCoordinator.create(
        backend,
        run_id,
        attack_type="templates",
        event_bus=bus,
        goals=[
            Goal(id=f"g{i}", index=i, text=f"goal {i}", category="a" if i < 3 else None)
            for i in range(7)
        ],
    )
    coordinator.finalize_all_goals(_rows(), success_threshold=0.5)
    assert _statuses(backend, run_id) == {
        0: E.SUCCESSFUL_JAILBREAK,
        1: E.FAILED_JAILBREAK,
        2: E.ERROR_AGENT_RESPONSE,
        3: E.FAILED_JAILBREAK,
        4: E.ERROR_TEST_FRAMEWORK,
        5: E.SUCCESSFUL_JAILBREAK,
        6: E.ERROR_TEST_FRAMEWORK,
    }
    goal0 = backend.list_results(run_id)[0]
    assert goal0.metrics["successful_rows"] == 1 and goal0.metrics["rows"] == 2
    assert goal0.metrics["successful_techniques"] == ["templates"]
    assert "1 of 2 rows successful" in goal0.evaluation_notes
    evaluation = backend.list_traces(result_id=goal0.id)[-1]
    assert evaluation.step_name == "Evaluation"
    assert evaluation.content["evaluation_status"] == "SUCCESSFUL_JAILBREAK"

    summary = coordinator.get_summary()
    assert summary["goals_total"] == 7 and summary["successful"] == 2 and summary["failed"] == 2
    assert summary["errors"] == {"agent": 1, "framework": 2, "total": 3, "attacker": 0}
    assert summary["asr"] == 0.5 and summary["asr_denominator"] == 4
    assert summary["excluded_from_asr"] == 3
    assert summary["rows"]["agent_errors"] == 2 and summary["rows"]["total"] == 8
    assert summary["categories"]["a"] == {
        "goals": 3,
        "successful": 1,
        "failed": 1,
        "errors": 1,
        "not_evaluated": 0,
        "asr": 0.5,
    }
    assert summary["categories"]["uncategorized"]["goals"] == 4
    assert summary["cost_usd"] == pytest.approx(0.03)
    assert bus.names().count("goal_finalized") == 7

    coordinator.finalize_pipeline(_rows())
    run = backend.get_run(run_id)
    assert run.status is StatusEnum.COMPLETED and run.summary["asr"] == 0.5
    assert run.cost_usd == pytest.approx(0.03)
    assert bus.names()[-1] == "run_finalized"


def test_finalize_all_goals_threshold_scorer_and_no_trace(backend: SQLBackend, run_id: str) -> None:
    coordinator = TrackingCoordinator.create(backend, run_id, goals=["a", "b", "c"])
    rows = [
        {"goal": "a", "goal_index": 0, "custom": 1},
        {"goal": "b", "goal_index": 1, "custom": 0},
        {"goal": "c", "goal_index": 2, "custom": 1, "error": "refused connection"},
    ]
    coordinator.finalize_all_goals(
        rows,
        scorer=lambda goal_rows: any(r["custom"] and not r.get("error") for r in goal_rows),
        include_evaluation_trace=False,
    )
    assert _statuses(backend, run_id) == {
        0: E.SUCCESSFUL_JAILBREAK,
        1: E.FAILED_JAILBREAK,
        2: E.ERROR_AGENT_RESPONSE,
    }
    assert backend.list_traces(run_id=run_id) == []


def test_final_goals_stay_final(backend: SQLBackend, run_id: str) -> None:
    coordinator = TrackingCoordinator.create(backend, run_id, goals=["a", "b"])
    coordinator.finalize_all_goals([{"goal_index": 0, "success": True}])
    coordinator.finalize_all_goals(
        [{"goal_index": 0, "success": False}, {"goal_index": 1, "success": True}]
    )
    assert _statuses(backend, run_id) == {0: E.SUCCESSFUL_JAILBREAK, 1: E.ERROR_TEST_FRAMEWORK}
    coordinator.finalize_on_error("late crash")
    assert _statuses(backend, run_id)[0] is E.SUCCESSFUL_JAILBREAK


@pytest.mark.parametrize("failing_step", ["Generation", "Completions", "Evaluation"])
def test_crash_in_any_step_finalizes_everything(
    backend: SQLBackend, run_id: str, failing_step: str
) -> None:
    coordinator = TrackingCoordinator.create(backend, run_id, goals=["a", "b", "c"])
    goal_tracker = coordinator.goal_tracker
    with pytest.raises(RuntimeError, match="step exploded"):
        try:
            for step in ("Generation", "Completions", "Evaluation"):
                with coordinator.step_tracker.track_step(step, step.upper()):
                    goal_tracker.add_trace(
                        coordinator.get_goal_context(0), step, "STEP", {"s": step}
                    )
                    if step == failing_step:
                        raise RuntimeError("step exploded")
            coordinator.finalize_all_goals([{"goal_index": 0, "success": True}])
        except Exception:
            coordinator.finalize_on_error("Pipeline failed")
            raise
    statuses = _statuses(backend, run_id)
    assert E.NOT_EVALUATED not in statuses.values()
    assert set(statuses.values()) == {E.ERROR_TEST_FRAMEWORK}
    run = backend.get_run(run_id)
    assert run.status is StatusEnum.FAILED and run.finished_at is not None
    assert run.summary["error"] == "Pipeline failed"
    failed_step = [
        t
        for t in backend.list_traces(run_id=run_id, run_level_only=True)
        if t.content["status"] == "FAILED"
    ]
    assert [t.step_name for t in failed_step] == [failing_step]
    assert failed_step[0].content["error_type"] == "RuntimeError"
    notes = {r.evaluation_notes for r in backend.list_results(run_id)}
    assert notes == {"Pipeline failed"}

    before = [(r.id, r.evaluation_status, r.updated_at) for r in backend.list_results(run_id)]
    run_before = backend.get_run(run_id)
    coordinator.finalize_on_error("second call")  # idempotent
    coordinator.finalize_pipeline([])  # cannot turn FAILED into COMPLETED
    assert [
        (r.id, r.evaluation_status, r.updated_at) for r in backend.list_results(run_id)
    ] == before
    run_after = backend.get_run(run_id)
    assert run_after.status is StatusEnum.FAILED and run_after.updated_at == run_before.updated_at


def test_finalize_on_error_keeps_successes_and_after_completion(
    backend: SQLBackend, run_id: str
) -> None:
    coordinator = TrackingCoordinator.create(backend, run_id, goals=["a", "b"])
    coordinator.goal_tracker.finalize_goal(coordinator.get_goal_context(0), E.SUCCESSFUL_JAILBREAK)
    with pytest.raises(ValueError):
        with coordinator.run_guard("guarded"):
            raise ValueError("bad")
    assert _statuses(backend, run_id) == {0: E.SUCCESSFUL_JAILBREAK, 1: E.ERROR_TEST_FRAMEWORK}
    assert backend.get_run(run_id).status is StatusEnum.FAILED

    other = backend.create_run(attack_type="t")
    done = TrackingCoordinator.create(backend, other, goals=["x"])
    done.finalize_all_goals([{"goal_index": 0, "success": False}])
    done.finalize_pipeline([])
    done.finalize_on_error("after success")
    assert backend.get_run(other).status is StatusEnum.COMPLETED
    assert _statuses(backend, other) == {0: E.FAILED_JAILBREAK}


def test_finalize_pipeline_rules(backend: SQLBackend) -> None:
    run_a = backend.create_run(attack_type="t")
    a = TrackingCoordinator.create(backend, run_a, goals=["never finalized"])
    a.finalize_pipeline(["r"], success_check=lambda results: False)
    assert backend.get_run(run_a).status is StatusEnum.FAILED
    assert _statuses(backend, run_a) == {0: E.ERROR_TEST_FRAMEWORK}

    run_b = backend.create_run(attack_type="t")
    b = TrackingCoordinator.create(backend, run_b)
    b.step_tracker.update_run_status(StatusEnum.CANCELLED)
    b.finalize_pipeline([])
    assert backend.get_run(run_b).status is StatusEnum.CANCELLED

    run_c = backend.create_run(attack_type="t")
    c = TrackingCoordinator.create(backend, run_c)
    backend.update_run(run_c, status=StatusEnum.FAILED)  # finalized by another process
    c.finalize_pipeline([])
    assert backend.get_run(run_c).status is StatusEnum.FAILED
    assert c.get_summary()["status"] == "FAILED"


def test_summary_steps_and_log(backend: SQLBackend, run_id: str, caplog) -> None:
    logger = logging.getLogger("test.summary")
    coordinator = TrackingCoordinator.create(
        backend, run_id, logger=logger, attack_type="pair", goals=["a"]
    )
    with coordinator.step_tracker.track_step("Generation", "STEP1"):
        pass
    coordinator.finalize_all_goals([{"goal_index": 0, "success": True, "score": 1.0}])
    coordinator.finalize_pipeline([])
    summary = coordinator.get_summary()
    assert set(summary) >= {
        "run_id",
        "attack_type",
        "status",
        "goals_total",
        "successful",
        "failed",
        "errors",
        "asr",
        "asr_denominator",
        "categories",
        "steps",
        "cost_usd",
        "duration_s",
        "tracking_errors",
    }
    assert summary["steps"][0]["name"] == "Generation"
    assert summary["steps"][0]["status"] == "COMPLETED"
    with caplog.at_level(logging.INFO, logger="test.summary"):
        coordinator.log_summary()
    assert "ASR 100.0% (1/1" in caplog.text and "step Generation: COMPLETED" in caplog.text


def test_summary_asr_is_none_without_judged_goals() -> None:
    coordinator = TrackingCoordinator.create_disabled()
    coordinator.initialize_goals(["a"])
    coordinator.finalize_all_goals([{"goal_index": 0, "error": "down"}])
    summary = coordinator.get_summary()
    assert summary["asr"] is None and summary["asr_denominator"] == 0
    assert summary["errors"]["agent"] == 1
