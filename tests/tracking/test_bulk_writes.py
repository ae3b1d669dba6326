"""Bulk completion and verdict writes: same idempotency rules as the single-row methods."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from tracking import NewResult, SQLBackend


@dataclass
class Done:
    text: str | None = "Sure, here is"
    error: str | None = None
    error_kind: str | None = None
    cost_usd: float = 0.01
    prompt_tokens: int = 3
    completion_tokens: int = 4
    latency_s: float = 0.2
    attempts: int = 1


@dataclass
class Said:
    judge: str
    success: bool | None
    score: float | None = None
    raw: str | None = "Yes"
    error: str | None = None
    cost_usd: float = 0.0


def _attempts(backend: SQLBackend, run_id: str, n: int) -> list[int]:
    result = backend.create_results(run_id, [NewResult(goal="g", goal_index=0)])[0]
    return backend.upsert_attempts(
        run_id, [{"result_id": result.id, "prompt_hash": f"h{i}"} for i in range(n)]
    )


def test_record_completions_stores_once_but_replaces_errors(backend: SQLBackend, run_id: str) -> None:
    ids = _attempts(backend, run_id, 3)
    stored = backend.record_completions([
        (ids[0], Done()), (ids[1], Done(text=None, error="HTTP 500", error_kind="server")),
    ])
    assert stored == 2
    again = backend.record_completions([
        (ids[0], Done(text="a different answer")),  # recorded answer wins
        (ids[1], Done(text="recovered")),  # an error is replaced
        (ids[2], Done(text="key sk-abcdefghijklmnopqrstuvwx leaked")),
    ])
    assert again == 2
    rows = {a.id: a for a in backend.list_attempts(run_id)}
    assert rows[ids[0]].response == "Sure, here is"
    assert rows[ids[1]].response == "recovered" and rows[ids[1]].error is None
    assert "sk-abcdefghijklmnopqrstuvwx" not in (rows[ids[2]].response or "")
    assert backend.list_attempts(run_id, pending_only=True) == []


def test_record_verdicts_is_insert_or_ignore(backend: SQLBackend, run_id: str) -> None:
    ids = _attempts(backend, run_id, 2)
    backend.record_verdicts([(ids[0], Said("harmbench", True, 1.0)),
                             (ids[1], Said("harmbench", None, error="unparseable: ?"))])
    backend.record_verdicts([(ids[0], Said("harmbench", False, 0.0)),
                             (ids[0], Said("refusal", False, 0.0))])
    got = {(j.attempt_id, j.judge): j for j in backend.list_judgments(run_id=run_id)}
    assert len(got) == 3
    assert got[(ids[0], "harmbench")].success is True  # the first verdict stays
    assert got[(ids[1], "harmbench")].error == "unparseable: ?"
    assert all(j.run_id == run_id for j in got.values())
    backend.record_verdicts([])
    assert backend.record_completions([]) == 0


def test_update_results_keeps_agent_data_it_was_not_given(backend: SQLBackend, run_id: str) -> None:
    from tracking import EvaluationStatusEnum, ResultUpdate

    result = backend.create_results(run_id, [NewResult(goal="g", goal_index=0)])[0]
    backend.update_results([ResultUpdate(result_id=result.id,
                                         evaluation_status=EvaluationStatusEnum.FAILED_JAILBREAK,
                                         agent_specific_data={"runs": 3})])
    backend.update_results([ResultUpdate(result_id=result.id,
                                         evaluation_status=EvaluationStatusEnum.NOT_EVALUATED)],
                           only_if_not_evaluated=False)
    (stored,) = backend.list_results(run_id)
    assert stored.evaluation_status is EvaluationStatusEnum.NOT_EVALUATED
    assert stored.agent_specific_data == {"runs": 3}


def test_record_verdicts_survives_a_commit_between_its_lookup_and_its_insert(
    tmp_path: Path,
) -> None:
    """SQLite: a transaction that reads, then writes, fails at once ("database is locked",
    SQLITE_BUSY_SNAPSHOT — the busy timeout does not help) when another connection commits in
    between, e.g. the run's heartbeat. Seen in a Best-of-N step; verdict writes must not read and
    write in one transaction."""
    path = tmp_path / "store.db"
    backend = SQLBackend(f"sqlite:///{path}")
    run_id = backend.create_run(attack_type="test", target_description="unit test target")
    ids = _attempts(backend, run_id, 2)
    fired: list[str] = []

    def heartbeat_in_between(conn: object, cursor: object, statement: str, *_: object) -> None:
        if not fired and statement.lstrip().upper().startswith("SELECT") and "attempts" in statement:
            fired.append(statement)
            other = sqlite3.connect(path, timeout=30)  # another process's connection
            other.execute("UPDATE runs SET heartbeat_at = CURRENT_TIMESTAMP WHERE id = ?",
                          (run_id,))
            other.commit()
            other.close()

    sa.event.listen(backend.engine, "after_cursor_execute", heartbeat_in_between)
    try:
        backend.record_verdicts([(ids[0], Said("harmbench", True, 1.0)),
                                 (ids[1], Said("harmbench", False, 0.0))])
    finally:
        sa.event.remove(backend.engine, "after_cursor_execute", heartbeat_in_between)
        backend.close()
    assert fired  # the interleaving happened
    stored = SQLBackend(f"sqlite:///{path}")
    assert {j.attempt_id: j.success for j in stored.list_judgments(run_id=run_id)} == {
        ids[0]: True, ids[1]: False}
    stored.close()
