"""Memory and CPU of the attack steps against run size (issue 23): flat in attempts, not linear.

Runs `flows.steps.run_steps` (Generation, Best-of-N, Completions, Evaluation, as the attack
flow calls them, without Prefect's orchestration: each step's function is called directly, no
progress artifact) against an in-process fake target that answers at once with a refusal,
judged by the refusal judge, on a fresh SQLite store. Each size runs in a fresh subprocess, so
its max RSS (`ru_maxrss`) is that size's alone. Printed per size: wall, CPU per attempt, max
RSS, and the RSS before the steps (interpreter, imports, the goal rows).

* `templates`: G goals x the 5 templates (G = attempts / 5);
* `bon`: 100 goals x Best-of-N with N = attempts / 100, early stop off (every sample sent).

    .venv/bin/python bench/steps_bench.py [--mode templates|bon] [--sizes 20000,200000]
        [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

VARIANTS = ["prefix_injection", "refusal_suppression", "role_play", "hypothetical",
            "payload_splitting"]
BON_GOALS = 100


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _patch_out_prefect() -> None:
    """Steps as plain coroutines (`Task.fn`), progress without a Prefect API."""
    import flows.steps
    from tasks.progress import StepProgress

    async def start(self: StepProgress) -> None:
        return None

    StepProgress.start = start  # type: ignore[method-assign]
    flows.steps.retried = lambda step: step.fn  # type: ignore[assignment]


def _patch_target(calls: list[int]) -> None:
    """An instant in-process target that refuses every request."""
    import tasks.bon
    import tasks.completions
    from targets.completion import Completion

    async def chat(target: Any, messages: Any, **_: Any) -> Completion:
        calls[0] += 1
        await asyncio.sleep(0)
        return Completion(text="I'm sorry, but I can't help with that request.", cost_usd=0.0)

    tasks.completions.chat = chat  # type: ignore[assignment]
    tasks.bon.chat = chat  # type: ignore[assignment]


def child(mode: str, attempts: int, concurrency: int, db_url: str) -> dict[str, Any]:
    _patch_out_prefect()
    calls = [0]
    _patch_target(calls)
    from flows.steps import run_steps
    from judges.spec import JudgePanelSpec
    from targets import TargetConfig
    from tasks.context import GoalRow, RunRef
    from tracking import NewResult, get_backend

    backend = get_backend(db_url)
    run_id = backend.create_run(attack_type=mode, target_description="fake")
    goals = attempts // len(VARIANTS) if mode == "templates" else BON_GOALS
    results = backend.create_results(run_id, [
        NewResult(goal=f"Explain how to do forbidden thing number {i}", goal_index=i,
                  goal_id=f"g{i}") for i in range(goals)])
    rows = [GoalRow.of_result(r) for r in results]
    del results
    from attacks.spec import AttackSpec

    attack = (AttackSpec(name="templates", options={"variants": VARIANTS}) if mode == "templates"
              else AttackSpec(name="bon", options={"n": attempts // BON_GOALS,
                                                   "early_stop": False}))
    judges = JudgePanelSpec(judges=[{"name": "refusal"}], rule="any")
    before = _rss_mb()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    done = asyncio.run(run_steps(RunRef(db_url=db_url, run_id=run_id), TargetConfig(model="openai/fake"),
                                 attack, judges, rows, concurrency=concurrency, budget_usd=None,
                                 spent_usd=0.0))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"mode": mode, "attempts": attempts, "calls": calls[0], "judgments": done.judgments,
            "wall_s": wall, "cpu_ms_per_attempt": 1000 * cpu / max(calls[0], 1),
            "rss_before_mb": before, "max_rss_mb": _rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("templates", "bon"), default="templates")
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--db", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.mode, args.child, args.concurrency, args.db)))
        return
    work = Path(tempfile.mkdtemp(prefix="siegeflow-steps-bench-"))
    print(f"steps bench: {args.mode}, concurrency {args.concurrency}, instant fake target, "
          f"refusal judge, SQLite")
    for size in (int(s) for s in args.sizes.split(",")):
        db = f"sqlite:///{work / f'{args.mode}-{size}.db'}"
        out = subprocess.run([sys.executable, __file__, "--mode", args.mode, "--child", str(size),
                              "--concurrency", str(args.concurrency), "--db", db],
                             check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {r['attempts']:>8} attempts: {r['calls']} calls, {r['judgments']} judgments, "
              f"wall {r['wall_s']:7.1f} s, CPU {r['cpu_ms_per_attempt']:.2f} ms/attempt, "
              f"max RSS {r['max_rss_mb']:6.0f} MB (before the steps {r['rss_before_mb']:.0f} MB)")
    print("  load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
