"""Alembic: a fresh database, an upgrade that keeps data, and models that match migrations."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tracking import (
    EvaluationStatusEnum,
    SQLBackend,
    StatusEnum,
    StoreUnavailableError,
    check_store,
    get_backend,
    migrate,
)
from tracking.engine import make_engine
from tracking.models import SQLModel

FIRST = "0001_initial"
TABLES = {"runs", "results", "traces", "attempts", "judgments", "judge_validations"}


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_empty_database_to_head(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert TABLES | {migrate.VERSION_TABLE} <= _tables(engine)
    migrate.upgrade(engine)  # a no-op at head
    engine.dispose()


def test_models_match_migrations(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, migrate.head_revision())  # by Alembic: every revision replayed
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": migrate.VERSION_TABLE, "compare_type": True}
        )
        assert compare_metadata(context, SQLModel.metadata) == []
    engine.dispose()


def _schema(engine: sa.Engine) -> dict[str, object]:
    inspector = sa.inspect(engine)
    return {
        table: (
            sorted((c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                   for c in inspector.get_columns(table)),
            sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                   for i in inspector.get_indexes(table)),
            sorted(str(sorted(u["column_names"])) for u in inspector.get_unique_constraints(table)),
            sorted((tuple(f["constrained_columns"]), f["referred_table"])
                   for f in inspector.get_foreign_keys(table)),
            tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
        )
        for table in sorted(inspector.get_table_names())
    }


def test_a_new_store_is_created_as_migrations_make_it(empty_db_url: str, tmp_path) -> None:
    """A new store is created from the models and stamped at head (no Alembic import); its
    schema is the one replaying every revision gives, and later upgrades take it from there."""
    created = make_engine(empty_db_url)
    migrate.upgrade(created)
    assert migrate.current_revision(created) == migrate.head_revision()
    replayed = make_engine(f"sqlite:///{tmp_path / 'replayed.db'}")
    if created.dialect.name == "sqlite":
        migrate.upgrade(replayed, migrate.head_revision())
        assert _schema(created) == _schema(replayed)
    replayed.dispose()
    migrate.downgrade(created, FIRST)  # Alembic takes the created store down and up again
    migrate.upgrade(created)
    assert migrate.current_revision(created) == migrate.head_revision()
    created.dispose()


def test_upgrade_from_first_revision_keeps_data(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, FIRST)
    assert migrate.current_revision(engine) == FIRST
    assert "attempts" not in _tables(engine)
    run_id, result_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    meta = sa.MetaData()
    runs = sa.Table("runs", meta, autoload_with=engine)
    results = sa.Table("results", meta, autoload_with=engine)
    traces = sa.Table("traces", meta, autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(
            runs.insert().values(
                id=run_id,
                attack_type="legacy",
                status="COMPLETED",
                config={"model": "m"},
                summary={"asr": 1.0},
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            results.insert().values(
                id=result_id,
                run_id=run_id,
                goal="old goal",
                goal_index=0,
                evaluation_status="SUCCESSFUL_JAILBREAK",
                metrics={"rows": 2},
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            traces.insert().values(
                run_id=run_id,
                result_id=result_id,
                sequence=0,
                step_name="Completion",
                step_type="COMPLETION",
                content={"response": "old"},
                created_at=now,
            )
        )
    engine.dispose()

    backend = SQLBackend(empty_db_url)  # upgrades to head on first connect
    assert migrate.current_revision(backend.engine) == migrate.head_revision()
    run = backend.get_run(run_id)
    assert run.status is StatusEnum.COMPLETED and run.config == {"model": "m"}
    assert run.summary == {"asr": 1.0} and run.cost_usd == 0.0 and run.heartbeat_at is None
    (result,) = backend.list_results(run_id)
    assert result.evaluation_status is EvaluationStatusEnum.SUCCESSFUL_JAILBREAK
    assert result.metrics == {"rows": 2}
    (trace,) = backend.list_traces(result_id=result_id)
    assert trace.content == {"response": "old"}
    # the new tables work on the upgraded data, and numbering continues
    (attempt,) = backend.upsert_attempts(run_id, [{"result_id": result_id, "prompt_hash": "h"}])
    assert backend.record_judgment(attempt, "refusal", success=True).run_id == run_id
    assert (
        backend.enqueue_trace(run_id=run_id, result_id=result_id, step_name="n", step_type="N") == 1
    )
    backend.close()


def test_downgrade_to_base_and_back(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert not (TABLES & _tables(engine))
    migrate.upgrade(engine)
    assert TABLES <= _tables(engine)
    engine.dispose()


def test_opening_a_store_upgrades_an_older_one_and_refuses_an_unknown_one(empty_db_url: str) -> None:
    """What every command runs first (`check_store`) skips Alembic only for a store at the
    packaged head: one at an older revision is upgraded, one at a revision this version does not
    know (a newer siegeflow's) is refused in one line (Alembic's error, caught by a tuple that
    imports Alembic only once something was raised)."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine, "0006_review_labels")
    check_store(empty_db_url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    get_backend(empty_db_url).close()  # the next check opens the store anew
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '9999_future'"))
    with pytest.raises(StoreUnavailableError, match="cannot be opened.*9999_future"):
        check_store(empty_db_url)
    engine.dispose()


def test_connections_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path) -> None:
    """Four connections switching one new file to WAL at the same moment: SQLite refuses some
    at once with "database is locked" (measured with plain sqlite3: 75 of 400 rounds failed)
    unless the switch is tried again (`tracking.engine._use_wal`)."""
    failures: list[BaseException] = []
    for round_ in range(40):
        engines = [make_engine(f"sqlite:///{tmp_path}/new-{round_}.db") for _ in range(4)]
        start = threading.Barrier(len(engines))

        def connect(engine: sa.Engine, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                failures.append(exc)

        threads = [threading.Thread(target=connect, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for engine in engines:
            engine.dispose()
    assert failures == []


def test_concurrent_first_connects_migrate_once(empty_db_url: str) -> None:
    backends: list[SQLBackend] = []
    failures: list[BaseException] = []

    def open_store() -> None:
        try:
            backends.append(SQLBackend(empty_db_url))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert migrate.current_revision(backends[0].engine) == migrate.head_revision()
    for backend in backends:
        backend.close()
