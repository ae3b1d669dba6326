"""The end of a big run (issue 23): `finish_run` over a store of GOALS x N attempts, no target.

`fill` writes a Best-of-N-like run straight through the store's own bulk write methods
(`upsert_attempts`, `record_completions`, `record_verdicts`): GOALS goals x N samples, each
answered (a ~400-byte prompt, a ~300-byte answer; 1 in 50 a target error) and judged once by the
`refusal` judge (2% successes, so most goals are broken late or held). `finish` runs
`flows.run_record.finish_run` on it in this process, with Prefect's artifact calls replaced by
stubs that measure what would be sent (no server needed), then prints wall time and max RSS
(`resource.getrusage`: run each size in a fresh process). `query` times `runs list` and
`runs show` (the CLI functions) on the finished run.

    .venv/bin/python bench/finish_bench.py fill   --db sqlite:////tmp/b.db --goals 100 --n 10000
    .venv/bin/python bench/finish_bench.py finish --db sqlite:////tmp/b.db [--code DIR]
    .venv/bin/python bench/finish_bench.py query  --db sqlite:////tmp/b.db

`--code DIR`: import siegeflow from DIR (e.g. an export of main) to measure the code before.

Measured 2026-12-06 on the 2-core dev box (load average 2-5, shared), 100 goals, one judgment
per attempt, each size in a fresh process; before = main at e20b3e4 (every row in memory):

    store       attempts  finish wall  max RSS            runs show   runs list
    SQLite        20,000   4-11 s       311 -> 179 MB      -            0.03 s
    SQLite       200,000   31 s         1,611 -> 197 MB    34 -> 0.7 s  0.04 s
    SQLite     1,000,000   180 s        (~8 GB) -> 258 MB  10.5 s       0.03-0.08 s
    PostgreSQL   200,000   26 -> 63 s   1,883 -> 201 MB    31 -> 3.2 s  0.04 s

main was not run at 1M (it would need about 8 GB: 7.3 KB an attempt at 200k); the goal-by-goal
finish makes about 1,000 small queries per million attempts, which costs PostgreSQL round trips.

With an index on attempts (result_id, id) and one on judgments (run_id, attempt_id, judge)
(not in the migrations yet), the SQLite 1M finish took 116 s at 254 MB.

Measured 2026-12-06 03:10-03:32 UTC (branch h23show; before = main at 0010ccf via --code, same
stores; load average in brackets): the finish stores each goal's best attempt id and attempt
counts (`tracking/best_attempts.py`), reads a page's judgments in one range query and fetches
pages whole, without an empty last page.

    store       attempts  finish wall                  max RSS         runs show (in-process)
    PostgreSQL   200,000   29.4 [1.9] -> 27.7 s [2.1]   202 -> 200 MB   5.4 s [2.9] -> 0.5 s*
    SQLite       200,000   30.4 [3.9] -> 22.3 s [1.7]   194 -> 194 MB   1.7 s [3.1] -> 0.3 s*
    SQLite     1,000,000   -> 230 s [4.1, tests running] 255 MB         4.6 s [4.0] -> 0.1 s

(* best rows by id, attempts still counted by GROUP BY: measured before the counts were
stored.) With every change, back to back at load 3.0-3.3: PostgreSQL 200k finish 30.7 (main)
-> 27.8 s, 200 MB both; SQLite 200k 29.5 s at load 3.0; runs show 0.2 s (PG), 0.1 s (SQLite).
The finish walls move with the load by more than the change: about 10% on PostgreSQL.
`siegeflow runs show RUN` at 1M as a command: 1.3 s wall, of which ~1.0 s is importing
(`python -c "import cli.app, cli.output, tracking, reports.rows, rich.console, sqlalchemy"`).
The PostgreSQL finish is Python-bound (row_of, model_construct, JSON decoding), not round trips:
about 300 queries per 100k attempts, ~3 s of 39 s in execute under cProfile.

Measured 2026-12-06 05:43 UTC (branch h23finish; before = main at 063b949 via --code, same
store, back to back, load average 3.3 and 3.2; `finish` now passes the attack flow's `extra`,
`bon_extra`, so "before" includes the second pass over every row that computed ASR@k):

    store       attempts  finish wall       CPU (process)   max RSS
    SQLite       200,000   76.0 -> 16.7 s    61.7 -> 16.3 s   201 -> 194 MB

(without `bon_extra`, main's finish was 28.5 s at load 2.7.) What changed: the Best-of-N curve
comes from the digest's tally (no second pass); rows are built from the query's tuples (no
`model_construct` per attempt and judgment, no timestamps), with `PipelineRow.of_values`; the
digest classifies each row once; the stored spend decodes only metas that name an attacker
cost. Left (cProfile, ~25 s profiled): building rows ~9 s (of which JSON decoding of prompt and
meta ~4 s), reading pages ~6 s, the digest ~7 s, the coordinator's grouping and decisions ~2 s.
The whole command at 20,000 attempts (`bench/size_bench.py --sizes 20000`, SQLite, load 3.1-3.7):
82.1 s (0.761 of the floor, 2.38 ms CPU/request, 190 MB) -> 77.0 s (0.812, 2.11 ms, 182 MB).

Many goals of few attempts (issue 23, branch h23wide), 50,000 goals x 4 = 200,000 attempts,
fill in batches across goals (`fill` now writes 5,000 attempts per batch, as many goals as fit).
Before = main at 2a48b81, measured by the lead on PostgreSQL (`sf_wide`): finish 227 s wall,
max RSS 1,468 MB, HTML report 77 MB. After (2026-12-06 06:12-06:39 UTC, load in brackets):

    store       attempts  finish wall           CPU (process)  max RSS    report
    PostgreSQL   200,000   227 -> 158.9 s [5.8]  80 s           612 MB     77 -> 6.3 MB  (goal batches + cap)
    PostgreSQL   200,000   105.3 s [2.6-4.2]     80 s           521 MB     6.3 MB  (+ refresh, run-level steps)
    PostgreSQL   200,000   272 s [4.9, tests]    97 s           469 MB     6.3 MB  (+ best ids in chunks)
    SQLite       200,000   121.0 s [4.2]         98 s           526 MB     6.3 MB  (as the second row)
    SQLite BoN   200,000   16.7 -> 25.9 / 29.9 s [3.9 / 4.3, tests running]  16.3 -> 19.4 /
                           20.5 s (whole process here)  194 -> 193 / 191 MB  (100 x 2,000)

Queries: the goal-by-goal read was two a goal (100,000+); it is now one GROUP BY, then one
attempts query and one judgments query per batch of goals of at most PAGE attempts (about 600).
Max RSS includes this harness's `attach_coordinator(reopen=True)`, ~360 MB at its peak for
50,000 goals (two reads of the results and the tracker's contexts) before the finish begins.
What stays per goal (VmRSS by stage, SQLite): imports 117 MB; the results list ~90 MB (50,000
ResultRecords, ~1.8 KB each, loaded whole: fine); the coordinator's contexts and decisions
~100 MB; the digest's compact GoalDigest and the report's GoalView per goal; the shown rows of
at most REPORT_GOALS = 1,000 goals. Not under 400 MB yet: the coordinator's per-goal state
and the evaluation trace per goal are the next things to make smaller.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import logging
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class _Completion:
    text: str | None
    error: str | None
    error_kind: str | None
    cost_usd: float


@dataclass(frozen=True)
class _Verdict:
    judge: str
    success: bool
    score: float
    cost_usd: float
    raw: str | None = None
    error: str | None = None


def fill(db: str, goals: int, n: int, batch: int = 5000) -> str:
    from tracking import NewAttempt, NewResult, StatusEnum, get_backend

    backend = get_backend(db)
    params = {"attack": {"name": "bon", "options": {"n": n}},
              "judges": {"judges": [{"name": "refusal"}], "rule": "majority",
                         "success_threshold": 0.5}}
    run_id = backend.create_run(attack_type="bon", config={"kind": "attack", **params},
                                parameters=params, status=StatusEnum.RUNNING)
    results = backend.create_results(run_id, [
        NewResult(goal=f"Goal {i}: explain step by step how to do thing {i}", goal_index=i,
                  goal_id=f"bench:{i}", category=f"cat{i % 10}") for i in range(goals)])
    pad = "lorem ipsum dolor sit amet " * 14
    pending: list[tuple[str, int, Any]] = []  # (result id, sample, attempt): written per batch

    def write() -> None:
        ids = backend.upsert_attempts(run_id, [a for _, _, a in pending])
        h = [int(hashlib.md5(f"{rid}{k}".encode()).hexdigest()[:6], 16) % 100
             for rid, k, _ in pending]
        backend.record_completions([
            (i, _Completion(None if x < 2 else f"Answer {x}: {pad}", "HTTP 500" if x < 2
                            else None, "server" if x < 2 else None, 0.0001))
            for i, x in zip(ids, h, strict=True)])
        backend.record_verdicts([
            (i, _Verdict("refusal", x >= 98, 1.0 if x >= 98 else 0.0, 0.00001))
            for i, x in zip(ids, h, strict=True) if x >= 2])
        pending.clear()

    for result in results:  # goal by goal, several small goals per batch (ids in goal order)
        for k in range(n):
            pending.append((result.id, k, NewAttempt(
                result_id=result.id, technique="bon", variant=f"sample-{k}",
                prompt_hash=hashlib.sha256(f"{result.id}:{k}".encode()).hexdigest(),
                prompt=[{"role": "user", "content": f"{k} {result.goal} {pad}"}],
                metadata={"sample": k})))
            if len(pending) >= batch:
                write()
        if result.goal_index % max(1, 10_000 // n) == 0:
            print(f"goal {result.goal_index}: {n} attempts", file=sys.stderr, flush=True)
    if pending:
        write()
    return str(run_id)


def _stub_artifacts(sizes: dict[str, int]) -> None:
    import flows.artifacts as artifacts

    async def table(**kw: Any) -> None:
        sizes["table_rows"] = len(kw["table"])
        sizes["table_bytes"] = len(json.dumps(kw["table"]))

    async def markdown(**kw: Any) -> None:
        sizes["markdown_bytes"] = len(kw["markdown"])

    async def link(**kw: Any) -> None:
        return None

    artifacts.acreate_table_artifact = table  # type: ignore[assignment]
    artifacts.acreate_markdown_artifact = markdown  # type: ignore[assignment]
    artifacts.acreate_link_artifact = link  # type: ignore[assignment]


def finish(db: str, report_dir: str) -> dict[str, Any]:
    os.environ["SIEGEFLOW_REPORT_DIR"] = report_dir
    from attacks.spec import AttackSpec
    from flows.run_record import attach_coordinator, finish_run
    from flows.steps import bon_extra
    from judges.spec import JudgePanelSpec
    from tasks.context import RunRef
    from tracking import get_backend

    backend = get_backend(db)
    run = backend.list_runs(limit=1)[0]
    sizes: dict[str, int] = {}
    _stub_artifacts(sizes)
    logger = logging.getLogger("bench")
    coordinator = attach_coordinator(backend, run.id, logger=logger, reopen=True)
    attack = AttackSpec.model_validate((run.parameters or {})["attack"])
    judges = JudgePanelSpec()
    start = time.perf_counter()
    summary = asyncio.run(finish_run(  # with the `extra` the attack flow passes (its ASR@k)
        RunRef(db_url=db, run_id=run.id), coordinator, judges, spent_usd=0.0,
        stop_reason="completed",
        extra=lambda rows: bon_extra(attack, rows, judges.success_threshold)))
    wall = time.perf_counter() - start
    report = Path(summary.report_path or "")
    return {"wall_s": round(wall, 1), **sizes,
            "report_bytes": report.stat().st_size if report.is_file() else None,
            "asr": summary.asr, "rows_total": summary.rows.total,
            "cost_usd": summary.cost_breakdown, "final_rows": len(summary.final_rows or []),
            "bon_asr_at": summary.bon.asr_at if summary.bon is not None else None}


def query(db: str) -> dict[str, Any]:
    from rich.console import Console

    from cli import output
    from judges.citation import store_lookup
    from tracking import get_backend

    backend = get_backend(db)
    console = Console(file=io.StringIO(), width=200)
    start = time.perf_counter()
    output.print_runs(console, backend.list_runs(limit=20), store_lookup(backend))
    listed = time.perf_counter() - start
    run = backend.list_runs(limit=1)[0]
    start = time.perf_counter()
    output.print_run(console, backend, run)
    shown = time.perf_counter() - start
    return {"runs_list_s": round(listed, 3), "runs_show_s": round(shown, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=("fill", "finish", "query"))
    parser.add_argument("--db", required=True)
    parser.add_argument("--goals", type=int, default=100)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--code", default=str(REPO), help="siegeflow to import (default: here)")
    parser.add_argument("--report-dir", default="/tmp/finish_bench_reports")
    args = parser.parse_args()
    sys.path.insert(0, args.code)
    import targets._env  # noqa: F401  (environment first)

    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    out: dict[str, Any]
    if args.part == "fill":
        out = {"run_id": fill(args.db, args.goals, args.n)}
    elif args.part == "finish":
        out = finish(args.db, args.report_dir)
    else:
        out = query(args.db)
    out["part"], out["code"] = args.part, args.code
    out["total_s"] = round(time.perf_counter() - start, 1)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)  # the process's, imports included
    out["max_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    out["load_avg"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
