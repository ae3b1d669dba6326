"""Issue 23: a run finished goal by goal gives exactly the figures the all-rows path gave.

The reference is computed here the old way (every row in memory: `rows_of`, the spec's
`finalize_all_goals`, `technique_figures`, `judge_agreement(rows_by_judge)`, `bon_curve`,
`spend_of` over every record); the streamed way reads the store one goal (one page) at a time.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from typing import Any

import pytest

from flows.run_record import spend_of, stored_spend
from judges import judge_agreement, rows_by_judge
from reports.bon import bon_curve, curve_summary
from reports.digest import RunDigest
from reports.export import export_run
from reports.figures import by_technique, headline, judge_tallies, techniques_of
from reports.bon_html import curve_of
from reports.html import render_report
from reports.load import digest_run, load_run
from reports.rows import Recorded, StoredRows, best_rows_of, goal_groups, rows_of
from reports.rows import best_rows
from targets.completion import TRUNCATION_MARK
from flows.run_record import goal_ends
from tracking.best_attempts import record_best_attempts, stored_best, stored_counts
from tracking.success import RowOutcome, classify_row
from tracking import (
    BENIGN,
    OVER_REFUSAL,
    GoalSpec,
    NewAttempt,
    NewResult,
    StatusEnum,
    TrackingCoordinator,
    get_backend,
    technique_figures,
)

JUDGES = ("refusal", "harmbench", "strongreject")


def _record(backend: Any, goals: int, samples: int, seed: int = 3) -> str:
    """A Best-of-N-like run: `samples` per goal, three judges, errors, attacker failures, cut
    answers and one benign control goal."""
    rng = random.Random(seed)
    params = {"attack": {"name": "bon", "options": {"n": samples}},
              "judges": {"judges": [{"name": j} for j in JUDGES], "rule": "majority",
                         "success_threshold": 0.5}}
    run_id = backend.create_run(attack_type="bon", config={"kind": "attack", **params},
                                parameters=params, status=StatusEnum.RUNNING)
    results = backend.create_results(run_id, [
        NewResult(goal=f"goal <b>{i}</b>", goal_index=i, goal_id=f"g{i}",
                  category=("a", "b", None)[i % 3],
                  metadata={"kind": BENIGN} if i == goals else None)
        for i in range(goals + 1)])
    for result in results:
        new = [NewAttempt(result_id=result.id, technique="bon", variant=f"s{k}",
                          prompt_hash=hashlib.sha256(f"{result.id}{k}".encode()).hexdigest(),
                          prompt=[{"role": "user", "content": f"p{k} <script>x</script>"}],
                          metadata={"sample": k, **({"generation_cost_usd": 0.001 * k}
                                                     if k % 3 else {})})
               for k in range(samples)]
        for attempt_id in backend.upsert_attempts(run_id, new):
            roll = rng.random()
            if roll < 0.05:
                backend.record_completion(attempt_id, error="HTTP 500", error_kind="server",
                                          cost_usd=0.0)
                continue
            if roll < 0.08:
                backend.record_completion(attempt_id, error="attacker refused",
                                          error_kind="attacker_failure")
                continue
            cut = TRUNCATION_MARK if rng.random() < 0.1 else ""
            backend.record_completion(attempt_id, response=f"answer {roll:.3f}{cut}",
                                      cost_usd=rng.random() / 1000)
            keys = (OVER_REFUSAL,) if result.goal_index == goals else JUDGES
            for judge in keys:
                if rng.random() < 0.03:
                    backend.record_judgment(attempt_id, judge, error="judge timeout")
                    continue
                yes = result.goal_index != 1 and rng.random() < 0.15  # goal 1 is held
                backend.record_judgment(attempt_id, judge, success=yes,
                                        score=rng.random() if yes else 0.0,
                                        cost_usd=rng.random() / 5000,
                                        attacker_cost_usd=0.0001 if yes else None)
    return str(run_id)


def _same_curve(got: Any, want: Any) -> None:
    """The same ASR@k curve (what the summary's `bon` block is made of); the cost at k is
    summed goal by goal in one and in attempt order in the other, so compared to 1e-12."""
    assert [(p.k, p.broken, p.asr) for p in got.points] == [
        (p.k, p.broken, p.asr) for p in want.points]
    assert [p.cost_usd for p in got.points] == pytest.approx([p.cost_usd for p in want.points],
                                                            rel=1e-12)
    assert (got.n, got.goals, got.error_goals, got.samples, got.sample_errors) == (
        want.n, want.goals, want.error_goals, want.samples, want.sample_errors)
    assert curve_summary(got) == curve_summary(want)


def _coordinator(backend: Any, run_id: str) -> TrackingCoordinator:
    goals = [GoalSpec(text=r.goal, index=r.goal_index, goal_id=r.goal_id, category=r.category,
                      metadata=r.goal_metadata) for r in backend.list_results(run_id)]
    return TrackingCoordinator.create(None, None, goals=goals)


def _figures(coordinator: TrackingCoordinator) -> dict[str, Any]:
    summary = coordinator.get_summary()
    summary.pop("duration_s")
    return summary


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    if request.param == "sqlite":
        return get_backend(f"sqlite:///{tmp_path / 'runs.db'}")
    return get_backend(request.getfixturevalue("fresh_postgres_url"))


def test_goal_by_goal_gives_the_all_rows_figures(store: Any) -> None:
    run_id = _record(store, goals=7, samples=40)
    keys, rule, threshold = list(JUDGES), "majority", 0.5
    recorded = Recorded.load(store, run_id)
    rows = rows_of(recorded, keys, rule)
    old = _coordinator(store, run_id)
    old.finalize_all_goals(rows, success_threshold=threshold)

    results = store.list_results(run_id)
    digest = RunDigest(threshold, keys)
    new = _coordinator(store, run_id)

    def groups() -> Any:
        for result, mine in goal_groups(store, run_id, results, keys, rule, page=7):
            digest.add(result, mine)
            yield result.id, mine

    new.finalize_goal_groups(groups(), success_threshold=threshold)
    assert _figures(new) == _figures(old)
    assert [c.evaluation_status for c in new.goal_tracker.contexts] == [
        c.evaluation_status for c in old.goal_tracker.contexts]
    assert digest.technique_figures() == technique_figures(rows, threshold)
    assert digest.judge_agreement() == judge_agreement(rows_by_judge(rows))
    assert digest.judge_agreement()["pairwise"]["harmbench|refusal"]["kappa"] is not None
    assert digest.truncated == sum(1 for r in rows if TRUNCATION_MARK in (r.response or ""))
    assert stored_spend(store, run_id) == spend_of(recorded.attempts, recorded.judgments)
    stream = StoredRows(store, run_id, results, keys, rule, len(rows))
    assert list(stream) == rows and len(stream) == len(rows) and list(stream) == rows
    assert not isinstance(stream, list)  # a re-iterable, sized stream: no indexing
    assert bon_curve(stream, threshold, 40) == bon_curve(rows, threshold, 40)
    _same_curve(digest.bon_curve(40), bon_curve(rows, threshold, 40))
    best = {r.result_id: r for r in digest.best_rows}
    assert best == best_rows(rows, threshold)
    store.update_run(run_id, summary={"judge_keys": keys, "success_threshold": threshold})
    run = store.get_run(run_id)
    picked = {r.result_id: r for r in best_rows_of(store, run, results)}  # scanned
    assert picked == best_rows(rows, threshold)
    record_best_attempts(store, run_id, {g.result.id: g.best.attempt_id if g.best else None
                                         for g in digest.goals})  # as `finish_run` does
    stored = store.list_results(run_id)
    assert stored_best(stored) == {k: r.attempt_id for k, r in best_rows(rows, threshold).items()}
    picked = {r.result_id: r for r in best_rows_of(store, run, stored)}  # `runs show`, by id
    assert picked == best_rows(rows, threshold)


def test_runs_show_reads_each_goal_s_best_attempt_by_id(store: Any, monkeypatch: Any) -> None:
    """`runs show` of a finished run reads O(goals) attempts: never a goal's whole set."""
    import reports.rows
    import tracking.store_aggregates as aggregates
    from cli.output import print_run
    from rich.console import Console

    run_id = _record(store, goals=3, samples=120)
    keys, rule, threshold = list(JUDGES), "majority", 0.5
    rows = rows_of(Recorded.load(store, run_id), keys, rule)
    best = best_rows(rows, threshold)
    store.update_run(run_id, summary={"judge_keys": keys, "success_threshold": threshold})
    digest = RunDigest(threshold, keys)
    for result, mine in goal_groups(store, run_id, store.list_results(run_id), keys, rule):
        digest.add(result, mine)
    record_best_attempts(store, run_id, *goal_ends(digest))  # as `finish_run` does
    sql = aggregates.attempt_counts(store, [run_id])[run_id]
    assert stored_counts(store.list_results(run_id)) == {
        "attempts": sql.attempts, "answered": sql.answered, "errors": sql.errors,
        "pending": sql.pending}
    read: list[int] = []
    by_id = aggregates.attempts_by_id

    def counted(backend: Any, ids: Any) -> Any:
        found = by_id(backend, ids)
        read.extend(a.id for a in found)
        return found

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("read a goal's attempts")

    monkeypatch.setattr(aggregates, "attempts_by_id", counted)
    for name in ("attempt_pages", "attempts_judged_yes", "attempt_counts"):
        monkeypatch.setattr(aggregates, name, refuse)
    monkeypatch.setattr(reports.rows, "goal_groups", refuse)
    out = io.StringIO()
    print_run(Console(file=out, width=200), store, store.get_run(run_id))
    assert sorted(read) == sorted(r.attempt_id for r in best.values())
    assert len(read) == 4  # one per goal, of 4 x 120 attempts
    assert "goal &lt;b&gt;0" in out.getvalue() or "goal <b>0" in out.getvalue()
    assert (f"attempts: {sql.attempts} ({sql.answered} answered, {sql.errors} "
            f"errors, {sql.pending} pending)") in out.getvalue()


def assert_same_figures(capped: Any, full: Any) -> None:
    """Every figure a report prints from all goals is the same, capped or not."""
    assert headline(capped) == headline(full)
    assert by_technique(capped) == by_technique(full)
    assert by_technique(capped, variants=True) == by_technique(full, variants=True)
    assert judge_tallies(capped) == judge_tallies(full)
    assert techniques_of(None, capped) == techniques_of(None, full)
    assert curve_of(capped) == curve_of(full)


def test_report_of_a_capped_run_matches_and_says_what_is_left_out(store: Any) -> None:
    run_id = _record(store, goals=4, samples=60)
    run = store.get_run(run_id)
    store.update_run(run_id, summary={"judge_keys": list(JUDGES), "success_threshold": 0.5})
    full = load_run(store, run_id, with_traces=False)  # every row in memory (small run)
    digest = digest_run(store, store.get_run(run_id), store.list_results(run_id))
    capped = load_run(store, run_id, with_traces=False, digest=digest)
    assert run is not None
    assert_same_figures(capped, full)
    assert [g.best for g in capped.goals] == [g.best for g in full.goals]
    assert [g.cost_usd for g in capped.goals] == [g.cost_usd for g in full.goals]
    assert all(len(g.rows) == 50 and g.attempts == 60 for g in capped.goals)
    html = render_report(capped)
    assert "10 more attempt(s) of this goal are in the export" in html
    assert "<script>x</script>" not in html
    out = io.StringIO()
    export_run(store, run_id, "jsonl", out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) == 4 * 60  # the attacked goals (the benign one is not exported)
    assert [r["attempt_id"] for r in records] == sorted(r["attempt_id"] for r in records)


def test_goal_groups_of_interleaved_goals_carry_only_their_verdicts(store: Any) -> None:
    """Goals whose attempt ids interleave (a run's steps write goals side by side): a goal's
    page of ids lo..hi reads the verdicts of its own attempts only."""
    run_id = store.create_run(attack_type="bon", config={}, parameters={},
                              status=StatusEnum.RUNNING)
    results = store.create_results(run_id, [NewResult(goal=f"g{i}", goal_index=i)
                                            for i in range(2)])
    for k in range(30):
        for result in results:
            (attempt_id,) = store.upsert_attempts(run_id, [NewAttempt(
                result_id=result.id, technique="bon", prompt_hash=f"{result.id}{k}",
                prompt=[{"role": "user", "content": "p"}])])
            store.record_completion(attempt_id, response="a")
            store.record_judgment(attempt_id, "refusal", success=result.goal_index == 0,
                                  score=1.0 if result.goal_index == 0 else 0.0)
    rows = rows_of(Recorded.load(store, run_id), ["refusal"], "majority")
    results = store.list_results(run_id)
    got = [row for _, mine in goal_groups(store, run_id, results, ["refusal"], "majority",
                                          page=7) for row in mine]
    assert sorted(got, key=lambda r: r.attempt_id) == rows
    assert list(StoredRows(store, run_id, results, ["refusal"], "majority", 60)) == rows


def test_a_verdict_set_decided_before_is_looked_up_only_when_equal_means_same() -> None:
    """`reports.rows._decided` reuses a decision for an equal set of verdicts, except where
    equal values differ to the rule (`1 == True`, `-0.0 == 0.0`): those are decided anew."""
    from judges import combine, rule_score
    from reports.rows import _decided
    from tracking import JudgeCell

    for cells in [(JudgeCell(success=True, score=0.0),), (JudgeCell(success=True, score=-0.0),),
                  (JudgeCell(success=1, score=1.0),), (JudgeCell(success=True, score=1.0),),
                  (JudgeCell(success=True, score=1),), (JudgeCell(success=True, score=1.0),
                                                        JudgeCell(error="timeout"))]:
        for how in ("majority", "any", "all"):
            got = _decided(cells, how)
            want = (combine(cells, how), rule_score(cells, how))
            assert got == want and [repr(x) for x in got] == [repr(x) for x in want]


def test_the_summary_s_bon_block_comes_from_the_digest_without_a_second_pass(
        store: Any, monkeypatch: Any) -> None:
    """`bon_extra` on the end of a run's rows takes the ASR@k curve from their digest (the
    rows are not read again) and gives the block the rows themselves give, benign goals'
    samples included (this run's benign goal has Best-of-N rows and a success: leaving them
    out, or counting only the attacked goals' tally, changes `goals` and `broken`)."""
    import reports.rows
    from attacks.spec import AttackSpec
    from flows.steps import bon_extra

    run_id = _record(store, goals=5, samples=30, seed=11)
    keys, rule, threshold = list(JUDGES), "majority", 0.5
    rows = rows_of(Recorded.load(store, run_id), keys, rule)
    results = store.list_results(run_id)
    digest = RunDigest(threshold, keys)
    for result, mine in goal_groups(store, run_id, results, keys, rule):
        digest.add(result, mine)
    attack = AttackSpec(name="bon", options={"n": 30})
    want = bon_extra(attack, rows, threshold)
    assert want["bon"].goals == 6 and 0 < want["bon"].broken <= 6  # the benign goal counts
    assert digest.report_aggregates(30).bon.goals == 5  # the report's curve: attacked goals

    def unread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the rows were read a second time")

    monkeypatch.setattr(reports.rows, "stream_rows", unread)
    stream = StoredRows(store, run_id, results, keys, rule, len(rows), digest=digest)
    got = bon_extra(attack, stream, threshold)
    assert got == want
    assert got["bon"].model_dump_json() == want["bon"].model_dump_json()
    with pytest.raises(AssertionError, match="second time"):  # another threshold: read again
        bon_extra(attack, stream, 0.9)


class _Done:
    """A completion or a verdict for the store's bulk writers (`record_completions`,
    `record_verdicts`): many small goals are written in a few statements."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update({"text": None, "error": None, "error_kind": None, "cost_usd": 0.0,
                              "raw": None, "score": None, "success": None, **kw})


def _record_small_goals(backend: Any, goals: int, samples: int) -> str:
    """`goals` goals of `samples` attempts each (every 7th none, goal 5 many), written in
    bulk; each group of three goals round-robin (their ids interleave) and the rest in order."""
    rng = random.Random(11)
    params = {"judges": {"judges": [{"name": "refusal"}, {"name": "harmbench"}],
                         "rule": "majority", "success_threshold": 0.5}}
    run_id = backend.create_run(attack_type="bon", config={"kind": "attack", **params},
                                parameters=params, status=StatusEnum.RUNNING)
    results = backend.create_results(run_id, [
        NewResult(goal=f"goal {i}", goal_index=i, goal_id=f"g{i}", category=f"c{i % 4}",
                  metadata={"kind": BENIGN} if i == goals - 1 else None)
        for i in range(goals)])
    new: list[Any] = []
    for start in range(0, goals, 3):
        trio = results[start:start + 3]
        most = max(samples, 120)
        for k in range(most):
            for result in trio:
                n = 0 if result.goal_index % 7 == 3 else most if result.goal_index == 5 else samples
                if k < n:
                    new.append(NewAttempt(result_id=result.id, technique="bon", variant=f"s{k}",
                                          prompt_hash=f"{result.id}:{k}",
                                          prompt=[{"role": "user", "content": f"p{k}"}]))
    ids = [i for s in range(0, len(new), 2000)
           for i in backend.upsert_attempts(run_id, new[s:s + 2000])]
    rolls = [rng.random() for _ in ids]
    backend.record_completions([
        (i, _Done(error="HTTP 500", error_kind="server") if x < 0.05 else
         _Done(text=f"answer {x:.3f}", cost_usd=x / 1000)) for i, x in zip(ids, rolls)])
    benign = {i for i, a in zip(ids, new) if a.result_id == results[-1].id}
    backend.record_verdicts([
        (i, _Done(judge=judge, success=(yes := rng.random() < 0.2), score=1.0 if yes else 0.0,
                  cost_usd=x / 5000))
        for i, x in zip(ids, rolls) if x >= 0.05
        for judge in ((OVER_REFUSAL,) if i in benign else ("refusal", "harmbench"))])
    return str(run_id)


def _queries(backend: Any) -> list[str]:
    """Every statement `backend` sends from now on."""
    from sqlalchemy import event

    seen: list[str] = []
    event.listen(backend.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: seen.append(statement))
    return seen


def test_many_small_goals_are_read_a_batch_per_query(store: Any) -> None:
    """3,000 goals of 2 attempts (issue 23, many goals of few attempts): the same groups, in
    the same order, and the same decisions and figures as the all-rows path, in a few queries
    per batch of goals, not two a goal."""
    run_id = _record_small_goals(store, goals=3000, samples=2)
    keys, rule, threshold = ["refusal", "harmbench"], "majority", 0.5
    recorded = Recorded.load(store, run_id)
    rows = rows_of(recorded, keys, rule)
    results = store.list_results(run_id)
    by_goal: dict[Any, list[Any]] = {}
    for row in rows:
        by_goal.setdefault(row.result_id, []).append(row)
    old = _coordinator(store, run_id)
    old.finalize_all_goals(rows, success_threshold=threshold)

    seen = _queries(store)
    digest = RunDigest(threshold, keys, detail=100)
    new = _coordinator(store, run_id)
    got: list[Any] = []

    def groups() -> Any:
        for result, mine in goal_groups(store, run_id, results, keys, rule, page=50):
            digest.add(result, mine)
            got.append((result.id, mine))
            yield result.id, mine

    new.finalize_goal_groups(groups(), success_threshold=threshold)
    reads = [q for q in seen if q.lstrip().upper().startswith("SELECT")]
    assert [r for r, _ in got] == [r.id for r in results]
    assert got == [(r.id, by_goal.get(r.id, [])) for r in results]
    assert len(got[5][1]) == 120 and got[3][1] == []  # a goal alone in pages; one without
    assert len(reads) < len(results) / 10, len(reads)  # a batch of goals per query
    assert _figures(new) == _figures(old)
    assert [c.evaluation_status for c in new.goal_tracker.contexts] == [
        c.evaluation_status for c in old.goal_tracker.contexts]
    assert digest.technique_figures() == technique_figures(rows, threshold)
    assert digest.judge_agreement() == judge_agreement(rows_by_judge(rows))
    _same_curve(digest.bon_curve(2), bon_curve(rows, threshold, 2))
    every = best_rows(rows, threshold)
    assert {g.result.id: g.best_id for g in digest.goals} == {
        r.id: every[r.id].attempt_id if r.id in every else None for r in results}
    detailed = [g for g in digest.goals if g.detailed]
    assert len(detailed) == 100 == len(digest.goals) - digest.more_goals
    assert all(g.best == every.get(g.result.id) for g in detailed)
    assert all(g.best is None and g.shown == [] for g in digest.goals if not g.detailed)


def test_a_report_of_more_goals_than_the_cap_lists_the_cap_and_counts_every_goal(
        store: Any) -> None:
    run_id = _record(store, goals=9, samples=12)
    store.update_run(run_id, summary={"judge_keys": list(JUDGES), "success_threshold": 0.5})
    full = load_run(store, run_id, with_traces=False)  # every goal in detail
    capped = load_run(store, run_id, with_traces=False, detail=4)
    assert capped.aggregates is not None and full.aggregates is None
    assert_same_figures(capped, full)
    assert [g.status for g in capped.goals] == [g.status for g in full.goals]
    assert [g.cost_usd for g in capped.goals] == pytest.approx([g.cost_usd for g in full.goals])
    assert [g.best_attempt_id for g in capped.goals] == [g.best_attempt_id for g in full.goals]
    shown = [g for g in capped.goals if g.detailed]
    assert len(shown) == 4 and capped.more_goals == 5
    def broken(g: Any) -> bool:  # a successful best attempt (the statuses are not stored here)
        return g.best is not None and classify_row(g.best, 0.5) is RowOutcome.SUCCESSFUL

    first = [g.index for g in full.goals if broken(g)]
    assert 0 < len(first) < 4
    want = sorted(first + [g.index for g in full.goals if not broken(g)][:4 - len(first)])
    assert [g.index for g in shown] == want  # broken goals first, then by index
    assert [g.best for g in shown] == [g.best for g in full.goals if g.index in want]
    html = render_report(capped)
    assert "5 more goals are in the export (<code>siegeflow export " in html
    marker = 'role="row" data-status='
    assert render_report(full).count(marker) - html.count(marker) == 5
    assert "5 more goals" not in render_report(full)
