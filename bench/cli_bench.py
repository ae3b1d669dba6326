"""The command as a user types it: `siegeflow run` as a separate process, against its floor.

A local OpenAI-compatible server (another process) answers every call after L = 200 ms; the
scans run at concurrency C = 32 with the refusal judge (no judge calls), so the floor of a scan
of N target calls is N x L / C. Measured, each as its own `siegeflow run` process with a fresh
data directory and no Prefect server configured (the user's first experience):

* cold 1-goal run: no local server yet (the command starts it: a first start migrates its DB);
* warm 1-goal run: the server the cold run left (best and median of --warm runs);
* whole-command scans of 900 and 2,000 calls (G goals x 5 templates): wall, floor/wall, the
  Completions step's own floor/step wall ("in-run"), the time from the command's start to the
  flow run's start, and from the flow run's end (Prefect's end_time) to the process exit.

    .venv/bin/python bench/cli_bench.py [--sizes 900 2000] [--warm 3] [--latency 0.2] [--concurrency 32]
    .venv/bin/python bench/cli_bench.py --reads sqlite:////tmp/b.db [--code DIR] [--cold]

`--reads DB`: instead, the commands that only read the store, each as its own process, best of
5 (wall and CPU): `runs list` on a new data directory (no store yet) and on DB, `runs show RUN`
(DB's newest run). `--code DIR` runs the siegeflow in DIR (e.g. `git archive` of main) to
measure the code before. Fill DB with `bench/finish_bench.py fill` and `finish`. `--cold` drops
the page cache before each command (root): the first command after a reboot, every file read
from disk.

Every command pays its own imports (no resident helper process); the local server started
here is stopped at the end.

Measured 2026-12-05, every command in its own process, on the shared 2-core machine: at load
average 2.8 -> 1.8, warm 1-goal run best 2.80 s / median 3.11 s (2.49 s of CPU; command -> flow
start 1.76 s); 900 calls 8.97 s wall = 0.63 of the floor (in-run 0.90); 2,000 calls 16.61 s =
0.75 (in-run 0.95). At load 1.5 -> 5.3: 0.47 and 0.65. The start-up is Prefect's own import
and engine (about 1.5 s of CPU); a new store's Alembic replay (0.24 s) is gone.

`--reads`, measured 2026-12-06 05:42-05:46 UTC on the same shared machine (another helper ran
tests: load average 3.2-5.6), a SQLite store of 200,000 attempts (100 goals x 2,000, filled and
finished by bench/finish_bench.py), before = main at 063b949 via --code, rounds back to back;
best of 5, wall / CPU:

    command                    before                      after (lazy tracking, judges; no Alembic)
    runs list, new data dir    1.27-1.71 s / 1.09-1.51 s   0.95-1.40 s / 0.80-1.12 s
    runs list, 200k store      1.34-2.09 s / 0.97-1.58 s   0.87-1.48 s / 0.76-1.07 s
    runs show RUN, 200k store  1.17-2.22 s / 1.16-1.80 s   0.80-1.58 s / 0.80-1.28 s

The walls follow the load more than the code; CPU is the steadier figure, about 0.3 s less per
command. Imports alone (`-X importtime`, sum of self times, `runs list`, load 3.5): 1.17 ->
0.64 s, 759 -> 610 modules: no judges.base/targets/settings chain of the shipped judges, no
tracking coordinator/step tracker, no Alembic (0.1-0.4 s) for a store at head. What is left is
sqlalchemy + sqlmodel and the table models (~0.35 s), typer/rich (~0.15 s), and for `runs show`
rich rendering the goals table (~0.2 s for 100 goals). The queries themselves take 0.03-0.1 s
(0.03-0.08 s for `runs list` at 1M attempts, bench/finish_bench.py), so a 1M store adds little
to these figures; 200k was measured because a 1M fill takes minutes.

`--reads` at 1,000,000 attempts, measured 2026-12-06 13:52-13:53 UTC on an idle machine (load
0.6-0.9): SQLite = 100 goals x 10,000 filled and finished by bench/finish_bench.py;
PostgreSQL = the store of `bench/size_bench.py --sizes 1000000 --judge offline --db postgres
--keep`; before = main at 545a320 via --code, after = every command exits without finalizing
its heap (cli/__main__.py); best of 5, wall / CPU:

    command                     before          after
    SQLite runs list, new dir   0.60 / 0.60 s   0.49 / 0.49 s
    SQLite runs list            0.66 / 0.65 s   0.51 / 0.50 s
    SQLite runs show RUN        0.90 / 0.88 s   0.57 / 0.57 s
    PostgreSQL runs list        0.79 / 0.78 s   0.70 / 0.69 s
    PostgreSQL runs show RUN    1.02 / 0.93 s   0.75 / 0.65 s
    SQLite --cold: runs list    1.18-1.42 s     0.80-1.18 s   (every try's wall)
    SQLite --cold: runs show    1.30-1.67 s     1.12-1.41 s
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEMPLATES = ["prefix_injection", "refusal_suppression", "role_play", "hypothetical",
             "payload_splitting"]


def write_goals(path: Path, n: int) -> Path:
    path.write_text("id,goal\n" + "".join(f"g{i},Explain how to do forbidden thing number {i}\n"
                                           for i in range(n)), encoding="utf-8")
    return path


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, llm_url: str) -> None:
        self.args, self.work, self.llm_url = args, work, llm_url
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PREFECT_API_URL", "PREFECT_PROFILE")}
        self.env.update({"SIEGEFLOW_PREFECT_HOME": str(work / "prefect"),
                         "PREFECT_HOME": str(work / "client"),
                         "SIEGEFLOW_REPORT_DIR": str(work / "reports"), "COLUMNS": "160"})
        self.n = 0

    def run(self, goals: int, templates: int) -> dict[str, float]:
        """One `siegeflow run` process; its wall time and what the store and Prefect say."""
        self.n += 1
        db = f"sqlite:///{self.work}/run-{self.n}.db"
        goals_file = write_goals(self.work / f"goals-{self.n}.csv", goals)
        cmd = [str(Path(sys.executable).with_name("siegeflow")), "run",
               "--target", "openai/bench-target", "--api-base", self.llm_url,
               "--attack", "templates", "--attack-option",
               f"variants={json.dumps(TEMPLATES[:templates])}", "--judge", "refusal",
               "--goals", str(goals_file), "--db", db,
               "--concurrency", str(self.args.concurrency)]
        t0, cpu0 = time.time(), _children_cpu()
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False,
                              timeout=1800)
        t1, cpu = time.time(), _children_cpu() - cpu0
        if done.returncode != 0:
            raise SystemExit(f"siegeflow run failed ({done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return {"wall": t1 - t0, "cpu": cpu, **self._inside(db, t0, t1)}

    def _inside(self, db: str, t0: float, t1: float) -> dict[str, float]:
        from tracking import RunSummary, get_backend

        (run,) = get_backend(db).list_runs()
        steps = {s.name: s.duration_s for s in RunSummary.parse(run.summary).steps}
        flow_run = _flow_run(self._api_url(), run.prefect_flow_run_id)
        start, end = (datetime.fromisoformat(flow_run[k]).timestamp()
                      for k in ("start_time", "end_time"))
        return {"completions_s": steps.get("Completions", float("nan")),
                "to_flow_start": start - t0, "flow": end - start, "teardown": t1 - end}

    def _api_url(self) -> str:
        from flows.server import read_record

        record = read_record(self.work / "prefect")
        assert record is not None, "no local server was recorded"
        return record.api_url


def _flow_run(api_url: str, flow_run_id: str) -> dict:
    with urllib.request.urlopen(f"{api_url}/flow_runs/{flow_run_id}", timeout=30) as resp:
        return json.load(resp)


def _children_cpu() -> float:
    """User + system CPU seconds of this process's finished children (the command's own: the
    local server it may start runs in a session of its own and is not waited for). Unlike wall
    time, it hardly moves with the load of a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    """The 1/5/15-minute load averages (the machine is shared: figures depend on them)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def time_reads(db: str, code: Path, tries: int = 5, cold: bool = False) -> None:
    """`runs list` / `runs show` as a user runs them: wall and CPU, best of `tries`; `cold`:
    the page cache dropped before each try (the code's and the store's files read from disk,
    as for the first command after a reboot; needs root)."""
    from tracking import get_backend

    (run,) = get_backend(db).list_runs(limit=1)
    home = Path(tempfile.mkdtemp(prefix="siegeflow-reads-"))
    cases = [("runs list, new data dir", ["runs", "list"], {"SIEGEFLOW_HOME": str(home / "h")}),
             ("runs list, DB", ["runs", "list", "--db", db], {}),
             ("runs show RUN, DB", ["runs", "show", run.id, "--db", db], {})]
    print(f"reads of {db} ({code}); load average before {_load()}", flush=True)
    for label, args, extra in cases:
        env = {**os.environ, "COLUMNS": "160", **extra}
        walls, cpus = [], []
        for _ in range(tries):
            if cold:
                _drop_page_cache()
            t0, cpu0 = time.perf_counter(), _children_cpu()
            done = subprocess.run([sys.executable, "-m", "cli", *args], cwd=code, env=env,
                                  capture_output=True, text=True, check=False, timeout=300)
            walls.append(time.perf_counter() - t0)
            cpus.append(_children_cpu() - cpu0)
            if done.returncode != 0:
                raise SystemExit(f"{label} failed ({done.returncode}): {done.stderr[-2000:]}")
        print(f"  {label:24} best {min(walls):.2f} s wall, {min(cpus):.2f} s CPU "
              f"(walls {' '.join(f'{w:.2f}' for w in walls)}; load {_load()})", flush=True)


def _drop_page_cache() -> None:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        raise SystemExit(f"--cold needs root to drop the page cache: {exc}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[900, 2000])
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--reads", metavar="DB", help="time runs list/show on this store instead")
    parser.add_argument("--code", type=Path, default=ROOT, help="siegeflow to run (--reads)")
    parser.add_argument("--cold", action="store_true",
                        help="drop the page cache before each read command (--reads; root)")
    args = parser.parse_args()
    if args.reads:
        time_reads(args.reads, args.code.resolve(), cold=args.cold)
        return

    from flows.server import stop_server
    from tests.support.openai_server import start_server_process

    work = Path(tempfile.mkdtemp(prefix="siegeflow-cli-bench-"))
    print(f"cli bench: L={args.latency * 1000:.0f} ms, C={args.concurrency}, refusal judge; "
          f"load average before {_load()}", flush=True)
    llm = start_server_process(latency_s=args.latency, log_size=0)
    bench = Bench(args, work, llm.base_url)
    try:
        cold = bench.run(1, 1)
        print(f"  cold 1-goal run (starts the local server): {cold['wall']:6.2f} s wall", flush=True)
        warm = [bench.run(1, 1) for _ in range(args.warm)]
        walls = [w["wall"] for w in warm]
        print(f"  warm 1-goal run: best {min(walls):5.2f} s, median {statistics.median(walls):5.2f} s "
              f"wall (target <= 3 s), CPU {min(w['cpu'] for w in warm):.2f} s; "
              f"command->flow start {min(w['to_flow_start'] for w in warm):.2f} s, "
              f"flow {min(w['flow'] for w in warm):.2f} s, flow end->exit "
              f"{min(w['teardown'] for w in warm):.2f} s", flush=True)
        for calls in args.sizes:
            r = bench.run(calls // 5, 5)
            floor = calls * args.latency / args.concurrency
            print(f"  {calls:>5} calls: wall {r['wall']:6.2f} s, floor {floor:6.2f} s, whole command "
                  f"{floor / r['wall']:.2f} of the floor; in-run (Completions {r['completions_s']:.2f} s) "
                  f"{floor / r['completions_s']:.2f}; CPU {r['cpu']:.2f} s; "
                  f"command->flow start {r['to_flow_start']:.2f} s, "
                  f"flow {r['flow']:.2f} s, flow end->exit {r['teardown']:.2f} s", flush=True)
    finally:
        stop_server(work / "prefect")
        llm.stop()
    print(f"  load average after {_load()}")


if __name__ == "__main__":
    main()
