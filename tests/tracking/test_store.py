"""SQLBackend on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tracking import (
    EvaluationStatusEnum,
    NewAttempt,
    NewResult,
    ResultUpdate,
    SQLBackend,
    StatusEnum,
    default_db_url,
    get_backend,
)
from tracking.models import RunRecord


def test_run_lifecycle(backend: SQLBackend) -> None:
    run_id = backend.create_run(
        attack_type="advprefix",
        target_description="gpt-x",
        config={"model": "m", "api_key": "sk-abcdefghijklmnopqrstuvwx", "max_tokens": 64},
        parameters={"goals": 3, "token": "secret-token-value"},
        prefect_flow_run_id="flow-1",
    )
    run = backend.get_run(run_id)
    assert run is not None
    assert run.status is StatusEnum.PENDING
    assert run.config == {"model": "m", "api_key": "***", "max_tokens": 64}
    assert run.parameters == {"goals": 3, "token": "***"}
    assert run.prefect_flow_run_id == "flow-1"
    assert run.created_at.tzinfo is not None and run.started_at is None

    assert backend.update_run(run_id, status=StatusEnum.RUNNING)
    started = backend.get_run(run_id).started_at
    assert started is not None
    assert backend.update_run(run_id, status=StatusEnum.RUNNING)
    assert backend.get_run(run_id).started_at == started  # set once

    assert not backend.update_run(
        run_id, status=StatusEnum.COMPLETED, only_if_status_in=[StatusEnum.PENDING]
    )
    assert backend.update_run(
        run_id,
        status=StatusEnum.COMPLETED,
        summary={"asr": 0.5},
        cost_usd=1.25,
        only_if_status_in=[StatusEnum.PENDING, StatusEnum.RUNNING],
    )
    run = backend.get_run(run_id)
    assert run.status is StatusEnum.COMPLETED and run.finished_at is not None
    assert run.summary == {"asr": 0.5} and run.cost_usd == 1.25
    assert backend.get_run("missing") is None
    assert not backend.update_run("missing", status=StatusEnum.FAILED)


def test_list_runs_filters_and_order(backend: SQLBackend) -> None:
    kind = f"kind-{datetime.now().timestamp()}"
    first = backend.create_run(attack_type=kind)
    second = backend.create_run(attack_type=kind, status=StatusEnum.RUNNING)
    assert [r.id for r in backend.list_runs(attack_type=kind)] == [second, first]
    assert [r.id for r in backend.list_runs(attack_type=kind, status=StatusEnum.RUNNING)] == [
        second
    ]
    assert len(backend.list_runs(attack_type=kind, limit=1)) == 1
    assert [r.id for r in backend.list_runs(attack_type=kind, offset=1)] == [first]
    flow = f"flow-{kind}"
    tagged = backend.create_run(attack_type=kind, prefect_flow_run_id=flow)
    assert [r.id for r in backend.list_runs(prefect_flow_run_id=flow)] == [tagged]


def test_find_stale_runs(backend: SQLBackend) -> None:
    stale = backend.create_run(attack_type="stale", status=StatusEnum.RUNNING)
    fresh = backend.create_run(attack_type="stale", status=StatusEnum.RUNNING)
    done = backend.create_run(attack_type="stale")
    backend.update_run(done, status=StatusEnum.COMPLETED)
    table = RunRecord.__table__
    old = datetime.now(UTC) - timedelta(hours=2)
    with backend.engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id.in_([stale, done])).values(heartbeat_at=old))
    ids = {r.id for r in backend.find_stale_runs(3600)}
    assert stale in ids and fresh not in ids and done not in ids
    backend.heartbeat(stale)
    assert stale not in {r.id for r in backend.find_stale_runs(3600)}


def test_results_are_per_index_and_idempotent(backend: SQLBackend, run_id: str) -> None:
    records = backend.create_results(
        run_id,
        [
            NewResult(
                goal="same text", goal_index=0, goal_id="set:0", category="c1", metadata={"k": 1}
            ),
            NewResult(goal="same text", goal_index=1, goal_id="set:1"),
        ],
    )
    assert len({r.id for r in records}) == 2  # identical text, two results
    again = backend.create_results(run_id, [NewResult(goal="same text", goal_index=1)])
    assert again[0].id == records[1].id
    single = backend.create_result(run_id=run_id, goal="other", goal_index=2)
    listed = backend.list_results(run_id)
    assert [r.goal_index for r in listed] == [0, 1, 2]
    assert listed[0].goal_id == "set:0" and listed[0].category == "c1"
    assert listed[0].goal_metadata == {"k": 1}
    assert listed[2].id == single
    assert all(r.evaluation_status is EvaluationStatusEnum.NOT_EVALUATED for r in listed)
    assert backend.create_results(run_id, []) == []


def test_result_updates_compare_and_set(backend: SQLBackend, run_id: str) -> None:
    a, b = (
        r.id
        for r in backend.create_results(
            run_id, [NewResult(goal="a", goal_index=0), NewResult(goal="b", goal_index=1)]
        )
    )
    assert backend.update_result(
        a,
        evaluation_status=EvaluationStatusEnum.SUCCESSFUL_JAILBREAK,
        evaluation_notes="yes",
        metrics={"rows": 1},
        agent_specific_data={"x": 1},
        only_if_not_evaluated=True,
    )
    assert not backend.update_result(
        a, evaluation_status=EvaluationStatusEnum.FAILED_JAILBREAK, only_if_not_evaluated=True
    )
    backend.update_results(
        [
            ResultUpdate(result_id=a, evaluation_status=EvaluationStatusEnum.ERROR_TEST_FRAMEWORK),
            ResultUpdate(
                result_id=b,
                evaluation_status=EvaluationStatusEnum.FAILED_JAILBREAK,
                evaluation_notes="no",
                metrics={"rows": 2},
            ),
        ]
    )
    ra, rb = backend.get_result(a), backend.get_result(b)
    assert ra.evaluation_status is EvaluationStatusEnum.SUCCESSFUL_JAILBREAK  # final stays final
    assert ra.agent_specific_data == {"x": 1} and ra.evaluated_at is not None
    assert rb.evaluation_status is EvaluationStatusEnum.FAILED_JAILBREAK
    assert rb.evaluation_notes == "no" and rb.metrics == {"rows": 2}


def test_traces_sequence_per_stream_and_resume(store_url: str) -> None:
    backend = SQLBackend(store_url)
    run_id = backend.create_run(attack_type="t")
    rid = backend.create_result(run_id=run_id, goal="g", goal_index=0)
    seqs = [
        backend.enqueue_trace(
            run_id=run_id, result_id=rid, step_name="s", step_type="T", content={"i": i}
        )
        for i in range(5)
    ]
    run_seq = backend.enqueue_trace(run_id=run_id, step_name="run", step_type="R", content=None)
    step_id = backend.create_trace(
        run_id=run_id, step_name="Step", step_type="S", content={"status": "RUNNING"}
    )
    assert seqs == [0, 1, 2, 3, 4] and run_seq == 0
    assert backend.update_trace(step_id, content={"status": "COMPLETED"})
    backend.flush()
    backend.close()

    resumed = SQLBackend(store_url)  # a new process continues the numbering from the store
    assert resumed.enqueue_trace(run_id=run_id, result_id=rid, step_name="s", step_type="T") == 5
    assert resumed.enqueue_trace(run_id=run_id, step_name="run", step_type="R") == 2
    goal_traces = resumed.list_traces(result_id=rid)
    assert [t.sequence for t in goal_traces] == [0, 1, 2, 3, 4, 5]
    assert [t.content["i"] for t in goal_traces[:5]] == [0, 1, 2, 3, 4]
    run_level = resumed.list_traces(run_id=run_id, run_level_only=True)
    assert [(t.sequence, t.step_name) for t in run_level] == [(0, "run"), (1, "Step"), (2, "run")]
    assert run_level[1].id == step_id and run_level[1].content == {"status": "COMPLETED"}
    everything = resumed.list_traces(run_id=run_id)
    assert len(everything) == 9 and everything[0].result_id is None
    with pytest.raises(ValueError):
        resumed.list_traces()
    resumed.close()


def test_attempts_are_idempotent(backend: SQLBackend, run_id: str) -> None:
    rid = backend.create_result(run_id=run_id, goal="g", goal_index=0)
    rows = [
        {
            "result_id": rid,
            "prompt_hash": "h1",
            "technique": "templates",
            "variant": "v1",
            "prompt": [{"role": "user", "content": "hi"}],
            "metadata": {"n": 1},
        },
        NewAttempt(result_id=rid, prompt_hash="h2", technique="baseline"),
    ]
    ids = backend.upsert_attempts(run_id, rows)
    assert len(set(ids)) == 2
    assert backend.upsert_attempts(run_id, list(reversed(rows))) == list(reversed(ids))
    assert backend.upsert_attempts(run_id, []) == []
    first = backend.list_attempts(run_id)[0]
    assert first.prompt == [{"role": "user", "content": "hi"}] and first.meta == {"n": 1}
    assert first.technique == "templates" and first.completed_at is None

    assert backend.record_completion(ids[0], error="HTTP 500", error_kind="server", attempts=3)
    assert [a.id for a in backend.list_attempts(run_id, pending_only=True)] == [ids[1]]
    assert {
        a.id for a in backend.list_attempts(run_id, pending_only=True, include_errors=True)
    } == set(ids)
    assert backend.record_completion(
        ids[0],
        response="ok",
        cost_usd=0.5,
        prompt_tokens=3,
        completion_tokens=4,
        latency_s=0.2,
        attempts=1,
    )
    assert not backend.record_completion(ids[0], response="overwrite?")  # success wins
    stored = backend.list_attempts(run_id, result_id=rid)[0]
    assert stored.response == "ok" and stored.error is None and stored.cost_usd == 0.5

    class Completion:
        text, error, error_kind, cost_usd = "done", None, None, 0.1
        prompt_tokens, completion_tokens, latency_s, attempts = 1, 2, 0.3, 1

    assert backend.record_completion_from(ids[1], Completion())
    assert backend.list_attempts(run_id, pending_only=True) == []


def test_judgments_existing_row_wins(backend: SQLBackend, run_id: str) -> None:
    rid = backend.create_result(run_id=run_id, goal="g", goal_index=0)
    (aid,) = backend.upsert_attempts(run_id, [{"result_id": rid, "prompt_hash": "h"}])
    first = backend.record_judgment(
        aid, "refusal", success=True, score=0.9, raw="ok", cost_usd=0.01
    )
    second = backend.record_judgment(aid, "refusal", success=False, score=0.0)
    assert second.id == first.id and second.success is True and second.score == 0.9
    assert second.run_id == run_id

    class Verdict:
        judge, success, score, raw, error, cost_usd = "harmbench", None, None, None, "timeout", 0.0

    backend.record_verdict(aid, Verdict())
    judged = backend.list_judgments(run_id=run_id)
    assert [(j.judge, j.success, j.error) for j in judged] == [
        ("harmbench", None, "timeout"),
        ("refusal", True, None),
    ]
    assert len(backend.list_judgments(attempt_id=aid)) == 2
    with pytest.raises(ValueError):
        backend.list_judgments()


def test_flush_reports_lost_rows(backend: SQLBackend, run_id: str) -> None:
    from tracking import TraceWriteError

    backend.enqueue_trace(run_id="no-such-run", step_name="s", step_type="T")  # FK violation
    backend.enqueue_trace(run_id=run_id, step_name="kept", step_type="T")
    with pytest.raises(TraceWriteError) as info:
        backend.flush()
    assert info.value.lost == 1 and info.value.failures[0].run_id == "no-such-run"
    backend.flush()  # reported once
    assert [t.step_name for t in backend.list_traces(run_id=run_id)] == ["kept"]


def test_get_backend_is_shared_per_url(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = get_backend(url)
    assert get_backend(url) is first
    first.close()
    second = get_backend(url)
    assert second is not first and not second.closed
    second.close()
    assert "shared.db" in repr(second)


def test_default_db_url(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SIEGEFLOW_DB_URL", "sqlite:////elsewhere.db")
    assert default_db_url() == "sqlite:////elsewhere.db"
    monkeypatch.delenv("SIEGEFLOW_DB_URL")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    url = default_db_url()
    assert url.startswith("sqlite:///") and url.endswith("siegeflow.db")


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        SQLBackend("sqlite://")


def test_sqlite_pragmas(tmp_path) -> None:
    backend = SQLBackend(f"sqlite:///{tmp_path / 'p.db'}")
    with backend.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    backend.close()
    backend.close()  # idempotent


def test_step_traces_from_two_processes_do_not_collide(store_url: str) -> None:
    first, second = SQLBackend(store_url), SQLBackend(store_url)
    run_id = first.create_run(attack_type="t")
    assert first.create_trace(run_id=run_id, step_name="a", step_type="S") > 0
    second.create_trace(run_id=run_id, step_name="b", step_type="S")  # seeded from the store
    first.create_trace(run_id=run_id, step_name="c", step_type="S")  # stale counter: retried
    traces = first.list_traces(run_id=run_id, run_level_only=True)
    assert [(t.sequence, t.step_name) for t in traces] == [(0, "a"), (1, "b"), (2, "c")]
    first.close()
    second.close()
