"""StepTracker (spec 001) against the real store."""

from __future__ import annotations

import asyncio

import pytest

from tracking import EvaluationStatusEnum, SQLBackend, StatusEnum, StepTracker, TrackingContext


def _tracker(backend: SQLBackend, run_id: str, **kw) -> StepTracker:
    return StepTracker(TrackingContext(backend=backend, run_id=run_id, **kw))


def test_track_step_persists_start_and_end(backend: SQLBackend, run_id: str) -> None:
    tracker = _tracker(backend, run_id)
    tracker.add_step_metadata("before", "queued")
    with tracker.track_step(
        "Generate Prefixes",
        "STEP1_GENERATE",
        input_data={"goals": ["a", "b", "c", "d", "e"], "technique": "advprefix"},
        config={"temperature": 0.7, "api_key": "sk-abcdefghijklmnopqrstuvwx"},
    ) as trace_id:
        assert isinstance(trace_id, int)
        (running,) = backend.list_traces(run_id=run_id, run_level_only=True)
        assert running.id == trace_id and running.content["status"] == "RUNNING"
        assert running.content["metadata"] == {"before": "queued"}
        assert running.content["input"]["goals"] == ["a", "b", "c"]  # a sample, not all
        assert running.content["item_counts"] == {"input.goals": 5}
        assert running.content["config"]["api_key"] == "***"
        tracker.add_step_metadata("prefixes_generated", 150)
        tracker.record_progress("batch 1/2", items=50, errors=0)
        tracker.record_progress("batch 2/2", items=100, errors=1)
    (done,) = backend.list_traces(run_id=run_id, run_level_only=True)
    content = done.content
    assert done.id == trace_id and done.step_name == "Generate Prefixes"
    assert done.step_type == "STEP1_GENERATE"
    assert content["status"] == "COMPLETED" and content["duration_s"] >= 0
    assert content["metadata"] == {"before": "queued", "prefixes_generated": 150}
    assert content["item_counts"] == {"input.goals": 5, "items": 100, "errors": 1}
    assert [p["message"] for p in content["progress"]] == ["batch 1/2", "batch 2/2"]
    assert content["error_type"] is None
    (step,) = tracker.steps
    assert step.status is StatusEnum.COMPLETED and step.trace_id == trace_id


def test_track_step_records_error_and_reraises(backend: SQLBackend, run_id: str) -> None:
    tracker = _tracker(backend, run_id)
    with pytest.raises(KeyError, match="boom"):
        with tracker.track_step("Evaluate", "STEP3_EVAL") as trace_id:
            tracker.add_step_metadata("evaluated", 3)
            raise KeyError("boom with token=abcdefgh1234")
    (trace,) = backend.list_traces(run_id=run_id, run_level_only=True)
    assert trace.id == trace_id
    assert trace.content["status"] == "FAILED" and trace.content["error_type"] == "KeyError"
    assert "boom" in trace.content["error_message"]
    assert "abcdefgh1234" not in trace.content["error_message"]
    assert trace.content["metadata"] == {"evaluated": 3}
    assert tracker.steps[0].status is StatusEnum.FAILED


def test_cancelled_step(backend: SQLBackend, run_id: str) -> None:
    tracker = _tracker(backend, run_id)

    async def step() -> None:
        with tracker.track_step("Completions", "STEP2"):
            await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(step())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    (trace,) = backend.list_traces(run_id=run_id, run_level_only=True)
    assert trace.content["status"] == "CANCELLED"


def test_steps_get_sequential_run_level_traces(backend: SQLBackend, run_id: str) -> None:
    tracker = _tracker(backend, run_id)
    for name in ("one", "two", "three"):
        with tracker.track_step(name, name.upper()):
            pass
    traces = backend.list_traces(run_id=run_id, run_level_only=True)
    assert [(t.sequence, t.step_name) for t in traces] == [(0, "one"), (1, "two"), (2, "three")]


def test_update_run_and_result_status(backend: SQLBackend, run_id: str) -> None:
    result_id = backend.create_result(run_id=run_id, goal="g", goal_index=0)
    tracker = _tracker(backend, run_id, parent_result_id=result_id)
    assert tracker.update_run_status(StatusEnum.RUNNING) is True
    assert backend.get_run(run_id).status is StatusEnum.RUNNING
    assert (
        tracker.update_result_status(
            EvaluationStatusEnum.SUCCESSFUL_JAILBREAK, "judged", {"agent": "data"}
        )
        is True
    )
    result = backend.get_result(result_id)
    assert result.evaluation_status is EvaluationStatusEnum.SUCCESSFUL_JAILBREAK
    assert result.evaluation_notes == "judged" and result.agent_specific_data == {"agent": "data"}
    assert tracker.update_run_status(StatusEnum.COMPLETED) is True
    assert (
        tracker.update_run_status(
            StatusEnum.FAILED, only_if_status_in=(StatusEnum.PENDING, StatusEnum.RUNNING)
        )
        is False
    )
    assert backend.get_run(run_id).status is StatusEnum.COMPLETED
    no_parent = _tracker(backend, run_id)
    assert no_parent.update_result_status(EvaluationStatusEnum.FAILED_JAILBREAK) is False


def test_disabled_tracker_runs_steps_without_writing() -> None:
    tracker = StepTracker(TrackingContext.disabled())
    assert not tracker.context.is_enabled
    with tracker.track_step("Offline", "STEP") as trace_id:
        tracker.add_step_metadata("k", 1)
        tracker.record_progress("working", n=1)
    assert trace_id is None
    assert tracker.steps[0].status is StatusEnum.COMPLETED
    assert tracker.update_run_status(StatusEnum.COMPLETED) is False
    assert tracker.update_result_status(EvaluationStatusEnum.FAILED_JAILBREAK) is False
    assert tracker.context.errors.counts == {}
