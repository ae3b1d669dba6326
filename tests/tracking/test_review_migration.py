"""Migration 0006: the review tables come and go with their revision, on SQLite and PostgreSQL,
and a label per (item, reviewer) is replaced, not duplicated."""

from __future__ import annotations

import sqlalchemy as sa

from tracking import SQLBackend, migrate
from tracking.engine import make_engine
from tracking.store_review import NewDraw

REVIEW = "0006_review_labels"
TABLES = {"review_draws", "review_labels"}


def test_review_tables_follow_their_revision(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, REVIEW)
    assert TABLES <= set(sa.inspect(engine).get_table_names())
    migrate.downgrade(engine, "-1")
    assert not TABLES & set(sa.inspect(engine).get_table_names())
    migrate.upgrade(engine)
    assert TABLES <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_a_reviewer_relabelling_replaces_their_label(store_url: str) -> None:
    from tracking import NewAttempt, NewResult

    backend = SQLBackend(store_url)
    run_id = backend.create_run(attack_type="t")
    (result,) = backend.create_results(run_id, [NewResult(goal="g", goal_index=0)])
    (attempt,) = backend.upsert_attempts(run_id, [NewAttempt(result_id=result.id,
                                                             prompt_hash="h")])
    backend.add_review_draw(run_id, draw_id="d1", seed=1, items=[NewDraw(
        attempt_id=attempt, result_id=result.id, stratum="held", stratum_size=1,
        inclusion_prob=1.0, draw_prob=1.0)])
    backend.save_review_label(run_id, attempt_id=attempt, reviewer="a", label="true")
    backend.save_review_label(run_id, attempt_id=attempt, reviewer="a", label="false",
                              note="changed my mind")
    backend.save_review_label(run_id, attempt_id=attempt, reviewer="b", label="skip")
    labels = backend.list_review_labels(run_id)
    assert sorted((x.reviewer, x.label, x.note) for x in labels) == [
        ("a", "false", "changed my mind"), ("b", "skip", None)]
    (draw,) = backend.list_review_draws(run_id)
    assert (draw.position, draw.seed, draw.stratum) == (0, 1, "held")
    backend.close()
