"""Streamed reads of a run's attempts (issue 23): keyset pages, filters, SQL counts."""

from __future__ import annotations

from dataclasses import dataclass

from tracking import NewResult, SQLBackend
from tracking.store_pipeline import AttemptFilter, GoalShard


@dataclass
class Done:
    text: str | None = "an answer"
    error: str | None = None
    error_kind: str | None = None
    cost_usd: float = 0.0


@dataclass
class Said:
    judge: str
    success: bool | None = False
    score: float | None = None
    raw: str | None = "No"
    error: str | None = None


def _run(backend: SQLBackend, run_id: str, goals: int, per_goal: int) -> tuple[list[str], list[int]]:
    results = backend.create_results(
        run_id, [NewResult(goal=f"g{i}", goal_index=i) for i in range(goals)])
    rows = [{"result_id": r.id, "prompt_hash": f"h{k}", "technique": "t" if k % 2 else "u"}
            for r in results for k in range(per_goal)]
    return [r.id for r in results], backend.upsert_attempts(run_id, rows)


def _ids(pages: list[list]) -> list[int]:
    return [a.id for page in pages for a in page]


def test_pages_cover_every_attempt_once_in_id_order(backend: SQLBackend, run_id: str) -> None:
    _, ids = _run(backend, run_id, goals=3, per_goal=9)
    pages = list(backend.iter_attempts(run_id, page_size=5))
    assert [len(p) for p in pages] == [5, 5, 5, 5, 5, 2]
    assert _ids(pages) == sorted(ids)
    assert backend.count_attempts(run_id) == 27
    assert pages[0][0].prompt_hash == "h0" and pages[0][0].run_id == run_id  # whole records
    assert list(backend.iter_attempts("no-such-run")) == []


def test_filters_match_their_counts(backend: SQLBackend, run_id: str) -> None:
    results, ids = _run(backend, run_id, goals=3, per_goal=4)
    backend.record_completions([(ids[0], Done()), (ids[1], Done(text=None, error="HTTP 500")),
                                (ids[4], Done()), (ids[9], Done())])
    cases = [
        (AttemptFilter(pending=True), [i for i in ids if i not in (ids[0], ids[1], ids[4], ids[9])]),
        (AttemptFilter(answered=True), [ids[0], ids[4], ids[9]]),
        (AttemptFilter(answered=True, result_ids=[results[0]]), [ids[0]]),
        (AttemptFilter(answered=True, exclude_result_ids={results[0]}), [ids[4], ids[9]]),
        (AttemptFilter(technique="t"), ids[1::2]),
        (AttemptFilter(pending=True, result_ids=[]), []),
        (AttemptFilter(shard=GoalShard(index=1, count=2)), ids[4:8]),  # goal 1 of 0..2
        (AttemptFilter(answered=True, shard=GoalShard(index=0, count=2)), [ids[0], ids[9]]),
    ]
    for where, expected in cases:
        assert _ids(list(backend.iter_attempts(run_id, where, page_size=2))) == sorted(expected)
        assert backend.count_attempts(run_id, where) == len(expected)
    slim = next(backend.iter_attempts(run_id, columns=["result_id"]))
    assert slim[0].result_id == results[0] and slim[0].prompt is None  # only what was asked


def test_a_shard_of_more_goals_than_a_statement_takes_parameters(
    backend: SQLBackend, run_id: str
) -> None:
    """A shard is a condition on the goal index, not a list of ids: 70,000 goals in one shard
    would be more bound parameters than SQLite (32,766) or PostgreSQL (65,535) accept."""
    results = backend.create_results(
        run_id, [NewResult(goal=f"g{i}", goal_index=i) for i in range(70_001)])
    mine = [r.id for r in results if r.goal_index in (0, 69_999)]
    backend.upsert_attempts(run_id, [{"result_id": rid, "prompt_hash": "h"} for rid in mine])
    where = AttemptFilter(pending=True, shard=GoalShard(index=0, count=1))
    assert backend.count_attempts(run_id, where) == 2
    assert [a.result_id for page in backend.iter_attempts(run_id, where) for a in page] == mine


def test_a_pending_read_while_its_rows_are_completed_skips_nothing(
    backend: SQLBackend, run_id: str
) -> None:
    """What Completions does: complete each page (and rows further on) while paging on. By id,
    every pending row is read exactly once; by OFFSET, completing rows would shift the pages
    and skip half of them."""
    _, ids = _run(backend, run_id, goals=2, per_goal=50)
    seen: list[int] = []
    for page in backend.iter_attempts(run_id, AttemptFilter(pending=True), page_size=7):
        seen += [a.id for a in page]
        backend.record_completions([(a.id, Done()) for a in page])
    assert seen == sorted(ids)
    assert backend.count_attempts(run_id, AttemptFilter(pending=True)) == 0


def test_rows_completed_ahead_of_the_reader_are_not_read(backend: SQLBackend, run_id: str) -> None:
    _, ids = _run(backend, run_id, goals=1, per_goal=30)
    pages = backend.iter_attempts(run_id, AttemptFilter(pending=True), page_size=10)
    first = next(pages)
    backend.record_completions([(i, Done()) for i in ids[15:20]])  # done by another worker
    rest = [a.id for page in pages for a in page]
    assert [a.id for a in first] + rest == [i for i in ids if i not in ids[15:20]]


def test_attempted_goals_and_judged_pairs(backend: SQLBackend, run_id: str) -> None:
    results, ids = _run(backend, run_id, goals=2, per_goal=3)
    backend.create_results(run_id, [NewResult(goal="none yet", goal_index=9)])
    assert backend.attempted_result_ids(run_id) == set(results)
    backend.record_completions([(i, Done()) for i in ids])
    backend.record_verdicts([(ids[0], Said("a")), (ids[0], Said("b")), (ids[1], Said("a")),
                             (ids[4], Said("c"))])
    assert backend.judged_pairs(ids[:3], ["a", "b"]) == {(ids[0], "a"), (ids[0], "b"),
                                                         (ids[1], "a")}
    assert backend.judged_pairs(ids, None) >= {(ids[4], "c")}
    assert {(j.attempt_id, j.judge) for j in backend.judgments_of(ids, ["c"])} == {(ids[4], "c")}
    answered = AttemptFilter(answered=True)
    assert backend.count_judged(run_id, answered, ["a", "b"]) == 3
    assert backend.count_judged(run_id, AttemptFilter(answered=True, result_ids=[results[1]]),
                                ["a", "b", "c"]) == 1
