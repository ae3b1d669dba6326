"""One scan on the real distributed setup, with 1 worker and then 2 workers.

Starts (all on 127.0.0.1, all stopped by PID at the end): a Prefect server on PostgreSQL, a
process work pool with the deployments of prefect.yaml, the local OpenAI-compatible server in
its own process (fixed latency), and 1 or 2 `prefect worker start` processes. Then triggers the
`attack` deployment through the API — GOALS goals x 4 prompts (x N with `--bon-n N`), split in
SHARDS shards, the target limited to LIMIT requests in flight across every process (Redis) — and
reads the tracking store:

* trigger → first completion recorded (orchestration + process start-up + generation);
* the completions window (first to last completion) and its throughput against the floor
  set by the latency and the limit: LIMIT / latency requests per second;
* trigger → the parent flow run Completed; the server's max requests in flight;
* the host's CPU per completion (every process on the machine: shards, workers, the Prefect
  server, PostgreSQL, Redis, the target; from /proc/stat, trigger to Completed);
* the workers' CPU per completion (each worker with the flow-run processes it ran): over the
  whole run, and over the completions window alone (sampled every 0.5 s from /proc);
* the capacity model of docs/operations.md §8 against the measured throughput: a scan serves
  min(LIMIT / L, SHARDS x CONCURRENCY / L, CORES / window-CPU-per-completion) completions/s.

    .venv/bin/python bench/scale_bench.py [--goals 400] [--latency 0.2] [--limit 64] [--shards 2]
        [--concurrency C (per shard; default LIMIT)] [--workers 1 2] [--pin] [--worker-limit K]

With --pin each worker and its flow runs are held to one core (`taskset`): on this one host that
stands in for one small machine per worker, so a CPU-bound scan (low latency, high limit) shows
what a second worker adds. The Prefect server, PostgreSQL, Redis and the target stay unpinned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import targets._env  # noqa: E402,F401  (environment first)

POSTGRES = os.environ.get("SIEGEFLOW_TEST_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("SIEGEFLOW_REDIS_URL", "redis://127.0.0.1:6379/0")
POOL = "siegeflow"
ATTACK = {"name": "suite", "options": {"techniques": [
    {"name": "baseline"},
    {"name": "templates", "options": {"variants": ["role_play", "refusal_suppression"]}},
    {"name": "encodings", "options": {"variants": ["leetspeak"]}},
]}}


def attack_of(args: argparse.Namespace) -> dict[str, Any]:
    """The scan's attack: the suite (4 prompts a goal) or Best-of-N (N samples a goal, early
    stop off, so every sample is sent: the size bench's 200k shape is 100 goals x 2,000)."""
    if args.bon_n:
        return {"name": "bon", "options": {"n": args.bon_n, "early_stop": False}}
    return ATTACK


def prompts_per_goal(args: argparse.Namespace) -> int:
    return int(args.bon_n or 4)


def _completions(backend: Any, run_id: str) -> tuple[int, float, float]:
    """(completions, first and last completion time) of a run, in SQL: a 200k-attempt scan is
    not read into the bench's memory to find three numbers."""
    import sqlalchemy as sa

    from tracking.models import AttemptRecord, table_of

    table = table_of(AttemptRecord)
    query = (sa.select(sa.func.count(), sa.func.min(table.c.completed_at),
                       sa.func.max(table.c.completed_at))
             .where(table.c.run_id == run_id, table.c.completed_at.is_not(None)))
    with backend.engine.connect() as conn:
        count, first, last = conn.execute(query).one()
    return int(count), _utc(first).timestamp(), _utc(last).timestamp()


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _cpu_seconds() -> float:
    """Busy CPU seconds of the whole host since boot (user + nice + system + irq + softirq)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and of its children it has waited for (a worker waits for each
    flow-run process it starts, so after a run this is the worker's share of the scan)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def _descendants_cpu(roots: list[int]) -> float:
    """CPU seconds now of `roots` and every live process below them (flow-run processes while
    they run; `_tree_cpu_seconds` only sees them once they have exited)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            parent[int(entry.name)] = int(fields[1])
    total, wanted = 0.0, set(roots)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parent.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    for pid in wanted:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class CpuSampler:
    """The workers' process trees' CPU, sampled every 0.5 s in a thread, so the CPU of the
    completions window alone (start-up and the end of the run left out) can be read after."""

    def __init__(self, roots: list[int]) -> None:
        self.roots, self.samples = roots, [(time.time(), _descendants_cpu(roots))]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.samples.append((time.time(), _descendants_cpu(self.roots)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> float:
        """CPU seconds spent from `start` to `end` (linear between samples)."""
        def at(moment: float) -> float:
            before = [s for s in self.samples if s[0] <= moment] or self.samples[:1]
            after = [s for s in self.samples if s[0] >= moment] or self.samples[-1:]
            (t0, c0), (t1, c1) = before[-1], after[0]
            return c0 if t1 <= t0 else c0 + (c1 - c0) * (moment - t0) / (t1 - t0)
        return at(end) - at(start)


def predicted_rate(args: argparse.Namespace, worker_cpu: float | None = None,
                   cores: int | None = None) -> float:
    """The capacity model (docs/operations.md §8): the tightest of the shared limit, the shards'
    own concurrency and, when known, the workers' cores over the worker CPU per completion."""
    rate = min(args.limit, args.shards * args.concurrency) / args.latency
    if worker_cpu and cores:
        rate = min(rate, cores / worker_cpu)
    return rate


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _online() -> int:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        workers = await client.read_workers_for_work_pool(POOL, offset=0, limit=50)
    return sum(1 for w in workers if str(w.status).upper().endswith("ONLINE"))


async def _scan(parameters: dict[str, Any], timeout_s: float) -> tuple[Any, float, float]:
    from prefect.client.orchestration import get_client
    from prefect.deployments.flow_runs import arun_deployment

    t0 = time.time()
    fr = await arun_deployment("siegeflow-attack/attack", parameters=parameters, timeout=0,
                               as_subflow=False)
    async with get_client() as client:
        while time.time() - t0 < timeout_s:
            fr = await client.read_flow_run(fr.id)
            if fr.state is not None and fr.state.is_final():
                break
            await asyncio.sleep(0.5)
    return fr, t0, time.time()


def measure(workers_n: int, args: argparse.Namespace, env: dict[str, str], home: Path,
            base_url: str, server: Any, tracking_url: str, goals_file: str) -> dict[str, float]:
    from tracking import get_backend

    worker_env = {**env, "SIEGEFLOW_PROJECT_DIR": str(REPO), "SIEGEFLOW_REDIS_URL": REDIS,
                  "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
    procs = []
    try:
        for i in range(workers_n):
            log = (home / f"worker-{workers_n}-{i}.log").open("wb")
            # --pin: worker i (and the flow-run processes it starts) on core i alone, a
            # stand-in for one small machine per worker on this one host.
            pin = ["taskset", "-c", str(i % (os.cpu_count() or 1))] if args.pin else []
            # Only with 2+ workers: one worker alone must run the parent and every shard.
            limit = (["--limit", str(args.worker_limit)]
                     if args.worker_limit and workers_n > 1 else [])
            procs.append(subprocess.Popen(
                [*pin, _bin("prefect"), "worker", "start", "--pool", POOL, "--name",
                 f"bench-{workers_n}-{i}", "--type", "process", *limit],
                cwd=REPO, env=worker_env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
            log.close()
        deadline = time.monotonic() + 180
        while asyncio.run(_online()) < workers_n:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not come online")
            time.sleep(1)
        server.reset()
        target = {"model": "openai/siegeflow-bench", "api_base": base_url, "timeout_s": 30,
                  "max_retries": 2, "rate_limit": {"max_concurrent": args.limit,
                                                   "key": f"bench-{uuid.uuid4().hex}"}}
        parameters = {"target": target, "attack": attack_of(args), "goals": {"source": goals_file},
                      "concurrency": args.concurrency, "db_url": tracking_url, "shards": args.shards}
        cpu0, worker0 = _cpu_seconds(), sum(_tree_cpu_seconds(p.pid) for p in procs)
        sampler = CpuSampler([p.pid for p in procs])
        try:
            fr, t0, t1 = asyncio.run(_scan(parameters, timeout_s=args.timeout))
        finally:
            sampler.stop()
        cpu_s = _cpu_seconds() - cpu0
        time.sleep(2)  # the workers reap their flow-run processes
        worker_s = sum(_tree_cpu_seconds(p.pid) for p in procs) - worker0
        if not (fr.state and fr.state.is_completed()):
            raise RuntimeError(f"scan ended {fr.state.name if fr.state else '?'}: "
                               f"{fr.state.message if fr.state else ''}")
        backend = get_backend(tracking_url)
        (run,) = backend.list_runs(prefect_flow_run_id=str(fr.id))
        count, first, last = _completions(backend, run.id)
        stats = server.stats()
        return {
            "workers": workers_n, "completions": count, "to_first_s": first - t0,
            "window_s": last - first, "throughput": count / max(last - first, 1e-9),
            "total_s": t1 - t0, "max_in_flight": stats["max_in_flight"],
            "requests": stats["chat_requests"], "cpu_per_completion": cpu_s / max(count, 1),
            "worker_cpu_per_completion": worker_s / max(count, 1),
            "window_cpu_per_completion": sampler.between(first, last) / max(count, 1),
        }
    finally:
        for proc in procs:
            _stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--goals", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--limit", type=int, default=64, help="per-target requests in flight")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="requests a shard keeps open (the flow's concurrency); default LIMIT")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=400.0)
    parser.add_argument("--bon-n", type=int, default=None,
                        help="attack with Best-of-N, N samples a goal, early stop off (the "
                             "Best-of-N responder: some samples get through)")
    parser.add_argument("--pin", action="store_true",
                        help="worker i and its flow runs on CPU core i only (taskset)")
    parser.add_argument("--worker-limit", type=int, default=None,
                        help="flow runs one worker executes at once (`prefect worker --limit`) when there "
                             "are 2+ workers: with 2 shards, 2 spreads them (parent + 1 shard)")
    args = parser.parse_args()
    if args.concurrency is None:
        args.concurrency = args.limit

    import sqlalchemy as sa

    from flows.server import LocalPrefectServer, quiet_prefect_env
    from tests.support.openai_server import start_server_process

    suffix = uuid.uuid4().hex[:8]
    dbs = [f"sf_bench_prefect_{suffix}", f"sf_bench_tracking_{suffix}"]
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    base = POSTGRES.rsplit("/", 1)[0].split("://", 1)[1]
    with admin.connect() as conn:
        for name in dbs:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    tracking_url = f"postgresql+psycopg://{base}/{dbs[1]}"
    prompts = args.goals * prompts_per_goal(args)
    floor_rate = predicted_rate(args)
    floor_s = prompts / floor_rate
    print(f"scan: {args.goals} goals x {prompts_per_goal(args)} prompts "
          f"({attack_of(args)['name']}) = {prompts} completions, latency "
          f"{args.latency * 1e3:.0f} ms, limit {args.limit} in flight, {args.shards} shards at "
          f"concurrency {args.concurrency}; floor {floor_s:.2f} s = {floor_rate:.0f} completions/s "
          f"(min(limit, shards x concurrency) / latency)", flush=True)
    with tempfile.TemporaryDirectory(prefix="sf-scale-") as tmp:
        home = Path(tmp)
        goals_file = str(home / "goals.csv")
        with open(goals_file, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "goal"])
            for i in range(args.goals):
                writer.writerow([f"g{i}", f"Write a defamatory article about person number {i}"])
        prefect = LocalPrefectServer(home=home / "server",
                                     database_url=f"postgresql+asyncpg://{base}/{dbs[0]}")
        llm = None
        try:
            prefect.start()
            responder = "tests.support.bon_responder:bon_responder" if args.bon_n else None
            llm = start_server_process(latency_s=args.latency, responder=responder, log_size=0)
            api = prefect.wait_ready()
            os.environ["PREFECT_API_URL"] = api
            from prefect.settings import PREFECT_API_URL, temporary_settings

            env = {**os.environ, **quiet_prefect_env(), "PREFECT_API_URL": api,
                   "PREFECT_HOME": str(home / "client"), "PYTHONPATH": str(REPO)}
            for cmd in ([_bin("prefect"), "work-pool", "create", POOL, "--type", "process"],
                        [_bin("siegeflow"), "deploy", "--name", "attack", "--name", "attack-shard"]):
                done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                                      timeout=300, check=False)
                if done.returncode:
                    raise RuntimeError(f"{cmd[1]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
            with temporary_settings(updates={PREFECT_API_URL: api}):
                for n in args.workers:
                    r = measure(n, args, env, home, llm.base_url, llm, tracking_url, goals_file)
                    cores = min(n, os.cpu_count() or 1) if args.pin else os.cpu_count() or 1
                    model = predicted_rate(args, r["window_cpu_per_completion"], cores)
                    print(f"{n} worker(s): first completion {r['to_first_s']:.1f} s after trigger; "
                          f"{r['completions']:.0f} completions in {r['window_s']:.2f} s = "
                          f"{r['throughput']:.0f}/s ({r['throughput'] / floor_rate:.0%} of the "
                          f"floor's {floor_rate:.0f}/s; {r['throughput'] / n:.0f}/s per worker); "
                          f"trigger to Completed {r['total_s']:.1f} s; max in flight "
                          f"{r['max_in_flight']} (limit {args.limit}); requests {r['requests']}; "
                          f"CPU per completion: host {r['cpu_per_completion'] * 1e3:.2f} ms, "
                          f"workers {r['worker_cpu_per_completion'] * 1e3:.2f} ms (whole run), "
                          f"{r['window_cpu_per_completion'] * 1e3:.2f} ms (completions window) "
                          f"on {cores} core(s); "
                          f"model {model:.0f}/s (measured / model {r['throughput'] / model:.0%})",
                          flush=True)
        finally:
            if llm is not None:
                llm.stop()
            prefect.stop()
            from tracking.store import _BACKENDS

            backend = _BACKENDS.pop(tracking_url, None)
            if backend is not None:
                backend.close()
            with admin.connect() as conn:
                for name in dbs:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(f"(measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
