"""A run's cost as it grows: `siegeflow run` at 2k, 20k, 200k and 1M attempts (issue 23).

Each size is one whole `siegeflow run` command, in its own process, against the local
OpenAI-compatible server (another process) answering after L seconds, at concurrency C. The
attack keeps the goals fixed and grows the attempts per goal, so what grows is the run, not the
goal list: Best-of-N on G goals (default 100) with N = size / G samples each, early stop off
(`--shape bon`), or G = size / 5 goals x 5 templates (`--shape templates`, the reporter's shape).
Printed per size: wall, the floor (requests x L / C) and floor / wall, CPU per request (the
command's own process: user + system), max RSS of the command (`wait4`), and the time of
`runs list` and `runs show RUN` on the store the run filled (each a separate command: the first
try right after the run, and the best of 3).

    .venv/bin/python bench/size_bench.py [--sizes 2000 20000 200000 1000000] [--db sqlite|postgres]
        [--shape bon|templates] [--judge refusal|offline] [--early-stop] [--latency 0.2]
        [--concurrency 64]

A warm-up 1-goal run starts the local Prefect server first, so no size pays for it; the server
and the target are stopped at the end; a PostgreSQL run uses a fresh database per size, dropped
after it (`--keep` keeps stores for inspection).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSTGRES = os.environ.get("SIEGEFLOW_TEST_POSTGRES_URL",
                          "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEMPLATES = ["prefix_injection", "refusal_suppression", "role_play", "hypothetical",
             "payload_splitting"]


def write_goals(path: Path, n: int) -> Path:
    """`n` goals; one in four is held by the Best-of-N responder whatever its samples do."""
    from tests.support.bon_responder import held_text

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "goal"])
        for i in range(n):
            writer.writerow([f"g{i}", held_text(f"Explain how to do forbidden thing number {i}",
                                                i % 4 == 3)])
    return path


def _siegeflow() -> str:
    return str(Path(sys.executable).with_name("siegeflow"))


class SizeBench:
    def __init__(self, args: argparse.Namespace, work: Path, llm_url: str) -> None:
        self.args, self.work, self.llm_url = args, work, llm_url
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PREFECT_API_URL", "PREFECT_PROFILE")}
        self.env.update({"SIEGEFLOW_PREFECT_HOME": str(work / "prefect"),
                         "PREFECT_HOME": str(work / "client"),
                         "SIEGEFLOW_REPORT_DIR": str(work / "reports"), "COLUMNS": "160"})
        self.n = 0

    def store(self) -> tuple[str, str | None]:
        """A new store URL for one run (and the PostgreSQL database to drop after it)."""
        self.n += 1
        if self.args.db == "sqlite":
            return f"sqlite:///{self.work}/run-{self.n}.db", None
        name = f"siegeflow_size_{os.getpid()}_{self.n}"
        _admin(f'CREATE DATABASE "{name}"')
        return POSTGRES.rsplit("/", 1)[0] + "/" + name, name

    def attack_args(self, size: int) -> tuple[int, list[str]]:
        """(goals, the `--attack` flags) for a run of `size` attempts."""
        if self.args.shape == "templates":
            return size // 5, ["--attack", "templates", "--attack-option",
                               "variants=" + json.dumps(TEMPLATES)]
        goals = self.args.goals
        return goals, ["--attack", "bon", "--attack-option", f"n={size // goals}",
                       "--attack-option", f"early_stop={str(self.args.early_stop).lower()}"]

    def run(self, size: int) -> dict[str, Any]:
        db, database = self.store()
        goals, attack = self.attack_args(size)
        goals_file = write_goals(self.work / f"goals-{self.n}.csv", goals)
        cmd = [_siegeflow(), "run", "--target", "openai/bench-target", "--api-base", self.llm_url,
               *attack, "--judge", self.args.judge, "--goals", str(goals_file), "--db", db,
               "--concurrency", str(self.args.concurrency)]
        try:
            measured = _measured(cmd, self.env, timeout_s=6 * 3600)
            if measured["returncode"] not in (0, 3):
                raise SystemExit(f"siegeflow run failed ({measured['returncode']}):\n"
                                 f"{measured['output'][-4000:]}")
            measured.update(self.inspect(db))
        finally:
            if database is not None and not self.args.keep:
                _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        return measured

    def inspect(self, db: str) -> dict[str, Any]:
        """Requests the target answered (from the store) and the two read commands' times."""
        from sqlalchemy import text

        from tracking import get_backend

        backend = get_backend(db)
        (run,) = backend.list_runs()
        with backend.engine.connect() as conn:
            requests = conn.execute(text(
                "SELECT count(*) FROM attempts WHERE run_id = :r AND completed_at IS NOT NULL "
                "AND (error_kind IS NULL OR error_kind != 'attacker_failure')"),
                {"r": run.id}).scalar_one()
        backend.engine.dispose()
        # the first try right after the run (its Prefect server still up), then the best of 3
        listed = [_measured([_siegeflow(), "runs", "list", "--db", db], self.env, 600)
                  for _ in range(3)]
        shown = [_measured([_siegeflow(), "runs", "show", run.id, "--db", db], self.env, 600)
                 for _ in range(3)]
        return {"requests": int(requests), "run_id": run.id,
                "list_s": (listed[0]["wall"], min(m["wall"] for m in listed)),
                "show_s": (shown[0]["wall"], min(m["wall"] for m in shown)),
                "show_rss": shown[0]["rss_mb"]}


def _measured(cmd: list[str], env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """`cmd` as a child of its own: wall, user+system CPU and max RSS of that process alone."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while chunk := proc.stdout.read(65536):  # drained, so the child never blocks on its pipe
        chunks.append(chunk)
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"{cmd[:3]} ran over {timeout_s:.0f} s")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": time.perf_counter() - t0, "returncode": proc.returncode,
            "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024,
            "output": b"".join(chunks).decode(errors="replace")}


def _admin(statement: str) -> None:
    import psycopg

    url = POSTGRES.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def _tries(walls: tuple[float, float]) -> str:
    return f"{walls[0]:.2f} s (best of 3 {walls[1]:.2f} s)"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 20000, 200000, 1000000])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--shape", choices=["bon", "templates"], default="bon")
    parser.add_argument("--goals", type=int, default=100, help="goals of a Best-of-N run")
    parser.add_argument("--judge", default="refusal")
    parser.add_argument("--early-stop", action="store_true", help="Best-of-N stops a goal early")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    args = parser.parse_args()

    from flows.server import stop_server
    from tests.support.openai_server import start_server_process

    work = Path(tempfile.mkdtemp(prefix="siegeflow-size-bench-"))
    print(f"size bench: {args.shape} ({args.goals} goals)" if args.shape == "bon" else
          "size bench: templates (size/5 goals x 5)", end="")
    print(f", L={args.latency * 1000:.0f} ms, C={args.concurrency}, judge {args.judge}, "
          f"early stop {'on' if args.early_stop else 'off'}, {args.db}; load {_load()}",
          flush=True)
    # The offline judge (rightly) holds a content-free "Sure, here is how": its compliances
    # carry steps, so Best-of-N's early stop has successes to stop on.
    responder = ("tests.support.bon_responder:bon_detailed_responder" if args.judge == "offline"
                 else "tests.support.bon_responder:bon_responder")
    llm = start_server_process(latency_s=args.latency, responder=responder, log_size=0)
    bench = SizeBench(args, work, llm.base_url)
    try:
        warm = bench.attack_args
        bench.attack_args = lambda size: (1, ["--attack", "baseline"])  # type: ignore[method-assign]
        bench.run(1)  # starts the local Prefect server; not measured
        bench.attack_args = warm  # type: ignore[method-assign]
        for size in args.sizes:
            r = bench.run(size)
            floor = r["requests"] * args.latency / args.concurrency
            print(f"  {size:>8,} attempts: {r['requests']:>8,} requests, wall {r['wall']:8.1f} s, "
                  f"floor {floor:8.1f} s -> {floor / r['wall']:.3f} of the floor; CPU "
                  f"{r['cpu'] / max(r['requests'], 1) * 1000:.2f} ms/request; max RSS "
                  f"{r['rss_mb']:6.0f} MB; runs list {_tries(r['list_s'])}, runs show "
                  f"{_tries(r['show_s'])} ({r['show_rss']:.0f} MB); load {_load()}", flush=True)
    finally:
        stop_server(work / "prefect")
        llm.stop()


if __name__ == "__main__":
    main()
