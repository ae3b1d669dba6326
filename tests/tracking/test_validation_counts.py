"""Migration 0005: judge validations keep their confusion counts (pooled and per data set), on
SQLite and PostgreSQL; a validation stored before it keeps its figures and reads as "no counts"."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from tracking import SQLBackend, migrate
from tracking.engine import make_engine

BEFORE = "0004_attacker_cost"
DATASETS = [{"name": "harmbench-contextual", "n": 200, "tp": 60, "fp": 20, "tn": 80, "fn": 20,
             "errors": 1, "out_of_sample": True}]


def test_upgrade_keeps_old_validations_and_adds_counts(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, BEFORE)
    table = sa.Table("judge_validations", sa.MetaData(), autoload_with=engine)
    assert "tp" not in table.c
    with engine.begin() as conn:
        conn.execute(table.insert().values(
            panel_key="old", panel={"judges": []}, source="old labels", labels_sha256="0" * 64,
            n=596, errors=0, accuracy=0.69, kappa=0.39, figures={}, created_at=datetime.now(UTC)))
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()  # 0005 and later
    columns = {c["name"] for c in sa.inspect(engine).get_columns("judge_validations")}
    assert {"positive", "tp", "fp", "tn", "fn", "datasets"} <= columns
    engine.dispose()

    backend = SQLBackend(empty_db_url)
    old = backend.get_validation("old")
    assert old is not None and old.n == 596 and old.accuracy == 0.69
    assert old.tp is None and old.datasets is None and old.positive is None
    backend.save_validation(
        panel_key="new", panel={"judges": []}, source="my labels", labels_sha256="1" * 64,
        n=500, errors=2, accuracy=0.86, kappa=0.71, figures={},
        counts={"tp": 170, "fp": 40, "tn": 260, "fn": 30}, positive="success",
        datasets=DATASETS)
    new = backend.get_validation("new")
    assert (new.tp, new.fp, new.tn, new.fn, new.positive) == (170, 40, 260, 30, "success")
    assert new.datasets == DATASETS
    backend.close()

    engine = make_engine(empty_db_url)
    migrate.downgrade(engine, BEFORE)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("judge_validations")}
    assert "tp" not in columns and "datasets" not in columns
    with engine.connect() as conn:  # the rows themselves survive the downgrade
        assert conn.execute(sa.text("SELECT count(*) FROM judge_validations")).scalar() == 2
    engine.dispose()


def test_a_validation_from_the_store_corrects_a_run(store_url: str) -> None:
    """The store's record is what `judges.corrected` reads (counts and the data set's)."""
    from judges.citation import panel_digest, panel_key, store_lookup
    from judges.corrected import asr_correction
    from tracking import RunSummary

    key = panel_key([{"name": "offline", "label": "mine"}], "single")
    backend = SQLBackend(store_url)
    backend.save_validation(
        panel_key=panel_digest(key), panel={}, source="my labels", labels_sha256="2" * 64,
        n=500, errors=0, accuracy=0.86, kappa=0.71, figures={},
        counts={"tp": 170, "fp": 40, "tn": 260, "fn": 30}, positive="success",
        datasets=DATASETS)
    summary = RunSummary.parse({"successful": 30, "failed": 70})
    params = {"goals": {"source": "harmbench:contextual"},
              "judges": {"judges": [{"name": "offline", "label": "mine"}], "rule": "any"}}
    block = asr_correction(params, summary, store_lookup(backend))
    assert block.origin == "this store" and block.stratum == "harmbench-contextual"
    assert (block.tp, block.tn) == (60, 80) and block.status == "corrected"
    backend.close()
