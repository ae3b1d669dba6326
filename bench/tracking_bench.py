"""Tracking throughput: 1,000 goals x 20 traces written concurrently, SQLite and PostgreSQL.

Prints traces/second for the tracking layer (``TrackingCoordinator`` + ``Tracker.add_trace``,
i.e. redaction, sequencing and the batched background writer, until ``flush()`` returns) on a
SQLite file and on PostgreSQL, and the same figure for a naive loop that commits one row at
a time with plain ``sqlite3`` (once with sqlite3's defaults, once with the same WAL pragmas
as the store). Targets: >= 20,000 traces/s on SQLite and >= 10x the naive loop. With WAL and
``synchronous=NORMAL`` a commit costs no fsync, so the WAL-tuned per-row loop is already
fast; it is printed so the ratio is read honestly.

    .venv/bin/python bench/tracking_bench.py [--goals 1000] [--traces 20] [--repeat 3]
                                             [--postgres ADMIN_URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tracking import SQLBackend, TrackingCoordinator

DEFAULT_PG = os.environ.get(
    "SIEGEFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NAIVE_TIME_BUDGET_S = 10.0


def trace_content(goal: int, i: int) -> dict:
    """A realistic completion trace: prompt, response, verdict, cost."""
    return {
        "technique": "templates",
        "variant": f"v{i}",
        "prompt": [
            {"role": "user", "content": f"Goal {goal}: " + "please explain the process " * 8}
        ],
        "response": "I cannot help with that request, but here is some general context. " * 4,
        "judge": {"name": "refusal", "success": False, "score": 0.05},
        "cost_usd": 0.00012,
        "latency_s": 0.41,
        "attempt": i,
    }


def bench_store(url: str, goals: int, traces: int) -> dict[str, float]:
    backend = SQLBackend(url)
    run_id = backend.create_run(attack_type="bench", config={"goals": goals, "traces": traces})
    t0 = time.perf_counter()
    coordinator = TrackingCoordinator.create(
        backend, run_id, attack_type="bench", goals=[f"bench goal {g}" for g in range(goals)]
    )
    init_s = time.perf_counter() - t0
    tracker = coordinator.goal_tracker

    async def goal_worker(index: int) -> None:
        ctx = coordinator.get_goal_context(index)
        for i in range(traces):
            tracker.add_trace(ctx, "Completion", "COMPLETION", trace_content(index, i))
            await asyncio.sleep(0)  # interleave all goals

    async def main() -> None:
        await asyncio.gather(*(goal_worker(g) for g in range(goals)))

    t1, cpu1 = time.perf_counter(), time.process_time()
    asyncio.run(main())
    enqueue_s = time.perf_counter() - t1
    tracker.flush()
    trace_s = time.perf_counter() - t1
    cpu_s = time.process_time() - cpu1  # all threads of this process: robust to other load
    t2 = time.perf_counter()
    coordinator.finalize_all_goals([], include_evaluation_trace=False)
    coordinator.finalize_pipeline([])
    finalize_s = time.perf_counter() - t2
    stored = len(backend.list_traces(run_id=run_id))
    errors = coordinator.get_summary()["tracking_errors"]
    backend.close()
    total = goals * traces
    if stored != total or errors:
        raise SystemExit(f"bench invalid: stored {stored} of {total} traces, errors {errors}")
    return {
        "traces": total,
        "traces_per_s": total / trace_s,
        "cpu_us_per_trace": cpu_s / total * 1e6,
        "enqueue_per_s": total / enqueue_s,
        "init_s": init_s,
        "trace_s": trace_s,
        "finalize_s": finalize_s,
        "end_to_end_per_s": total / (init_s + trace_s + finalize_s),
    }


def bench_naive(path: Path, goals: int, traces: int, wal: bool) -> dict[str, float]:
    """One INSERT + COMMIT per trace with plain sqlite3 (stops after a time budget)."""
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE traces (id INTEGER PRIMARY KEY, run_id TEXT, result_id TEXT, "
        "sequence INTEGER, step_name TEXT, step_type TEXT, content TEXT, created_at TEXT)"
    )
    conn.commit()
    run_id = str(uuid.uuid4())
    result_ids = [str(uuid.uuid4()) for _ in range(goals)]
    written = 0
    start = time.perf_counter()
    deadline = start + NAIVE_TIME_BUDGET_S
    for i in range(traces):
        for g in range(goals):
            conn.execute(
                "INSERT INTO traces (run_id, result_id, sequence, step_name, step_type, content, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    result_ids[g],
                    i,
                    "Completion",
                    "COMPLETION",
                    json.dumps(trace_content(g, i)),
                    datetime.now(UTC).isoformat(),
                ),
            )
            conn.commit()
            written += 1
        if time.perf_counter() > deadline:
            break
    elapsed = time.perf_counter() - start
    conn.close()
    return {"traces": written, "traces_per_s": written / elapsed}


def pg_database(admin_url: str) -> tuple[str, str] | None:
    name = f"sf_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(
        admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL      : not measured, unreachable ({exc.orig})")
        return None
    finally:
        engine.dispose()
    return name, make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, name: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


def best_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """The fastest run, with the median figure added (the machine is shared)."""
    best = max(runs, key=lambda r: r["traces_per_s"])
    return {**best, "median_per_s": statistics.median(r["traces_per_s"] for r in runs)}


def describe(label: str, result: dict[str, float], repeat: int) -> str:
    return (
        f"{label:<16}: {result['traces_per_s']:>9,.0f} traces/s best of {repeat} "
        f"(median {result['median_per_s']:,.0f}; {result['traces']:,} traces in "
        f"{result['trace_s']:.2f}s, enqueue {result['enqueue_per_s']:,.0f}/s, "
        f"{result['cpu_us_per_trace']:.1f} us CPU/trace; goal init "
        f"{result['init_s']:.2f}s, finalize {result['finalize_s']:.2f}s, end-to-end "
        f"{result['end_to_end_per_s']:,.0f}/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=1000)
    parser.add_argument("--traces", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="runs per backend (best is shown)")
    parser.add_argument("--postgres", default=DEFAULT_PG, help="admin URL (a throwaway DB is made)")
    args = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"tracking bench: {args.goals} goals x {args.traces} traces, {os.cpu_count()} cores, "
        f"load average {load}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lite = best_of(
            [
                bench_store(f"sqlite:///{folder / f'bench{i}.db'}", args.goals, args.traces)
                for i in range(args.repeat)
            ]
        )
        naive_default = bench_naive(folder / "naive.db", args.goals, args.traces, wal=False)
        naive_wal = bench_naive(folder / "naive_wal.db", args.goals, args.traces, wal=True)
    print(describe("SQLite", lite, args.repeat))
    created = pg_database(args.postgres)
    if created is not None:
        name, url = created
        try:
            pg = best_of([bench_store(url, args.goals, args.traces) for _ in range(args.repeat)])
        finally:
            drop_pg_database(args.postgres, name)
        print(describe("PostgreSQL", pg, args.repeat))
    for label, naive in (("naive (defaults)", naive_default), ("naive (WAL)", naive_wal)):
        print(
            f"{label:<16}: {naive['traces_per_s']:>9,.0f} traces/s  "
            f"({naive['traces']:,} rows, one commit each, plain sqlite3)  "
            f"-> tracking is {lite['traces_per_s'] / naive['traces_per_s']:.1f}x faster"
        )
    fast = lite["traces_per_s"] >= 20_000
    ratio_default = lite["traces_per_s"] / naive_default["traces_per_s"]
    ratio_wal = lite["traces_per_s"] / naive_wal["traces_per_s"]
    print(f"target >= 20,000 traces/s on SQLite: {'met' if fast else 'NOT met'}")
    verdict = "met" if ratio_default >= 10 else "NOT met"
    print(
        f"target >= 10x the naive plain-sqlite3 loop: {verdict} "
        f"({ratio_default:.1f}x); against the WAL-tuned per-row loop, which does no "
        f"redaction or sequencing: {ratio_wal:.1f}x"
    )


if __name__ == "__main__":
    main()
