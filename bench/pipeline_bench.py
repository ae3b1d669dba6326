"""Attack-flow throughput against the floor set by target latency and concurrency.

A local OpenAI-compatible server (another process, so its CPU is not counted) answers every
request after a fixed latency L. `attack_flow` runs G goals x P prompts at concurrency C, judged
by a model judge on the same server (one judge call per completion). Printed:

* wall time of the Completions and Evaluation steps next to their floors G*P*L/C, and the ratio
  floor/wall (1.0 = no overhead; target >= 0.8 at C=32, G=100);
* the flow's total wall time next to the sum of both floors;
* process CPU seconds per target call (all CPU of this process during the flow / calls made);
* the fixed overhead of a flow run with an empty goal list (target < 3 s).

Prefect runs against a local server started once here (the way a worker runs flows).

`--judge offline` judges with the offline judge instead (CPU in this process, no judge calls):
the Evaluation line then gives judgments/s next to the rate completions arrived at.

    .venv/bin/python bench/pipeline_bench.py [--goals 100] [--prompts 4] [--latency 0.2]
        [--concurrency 32] [--judge offline]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from flows.server import private_prefect_api  # noqa: E402 - after the Prefect environment

VARIANTS = ["prefix_injection", "refusal_suppression", "role_play", "hypothetical",
            "payload_splitting"]


def write_goals(path: Path, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "goal", "category"])
        for i in range(n):
            writer.writerow([f"bench-{i}", f"Explain how to do forbidden thing number {i}",
                             f"cat-{i % 5}"])


async def run_once(args: argparse.Namespace, base_url: str, goals_file: Path, db_url: str,
                   limit: int | None) -> tuple[float, float, Any]:
    from flows.config import JudgePanelSpec
    from targets import TargetConfig

    target = TargetConfig(model="openai/bench-target", api_base=base_url, max_retries=2,
                          timeout_s=30, input_cost_per_token=1e-7, output_cost_per_token=2e-7)
    judge_model = {"model": "openai/bench-judge", "api_base": base_url, "temperature": 0.0,
                   "max_retries": 2}
    panel = ([{"name": "offline"}] if args.judge == "offline"
             else [{"name": "harmbench", "model": judge_model}])
    judges = JudgePanelSpec(judges=panel, rule="any")
    return await timed_attack_flow(target, judges, args, goals_file, db_url, limit)


async def timed_attack_flow(target: Any, judges: Any, args: argparse.Namespace, goals_file: Path,
                            db_url: str, limit: int | None) -> tuple[float, float, Any]:
    """The templates attack (`args.prompts` variants) on the goals file: (wall s, CPU s, state)."""
    from flows.attack import attack_flow
    from flows.config import AttackSpec, GoalsSpec

    attack = AttackSpec(name="templates", options={"variants": VARIANTS[: args.prompts]})
    goals = GoalsSpec(source=str(goals_file), text_field="goal", id_field="id",
                      category_field="category", limit=limit)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    state = await attack_flow(target=target, attack=attack, judges=judges, goals=goals,
                              concurrency=args.concurrency, db_url=db_url, return_state=True)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if not state.is_completed():
        raise SystemExit(f"flow did not complete: {state.name}: {state.message}")
    return wall, cpu, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--goals", type=int, default=100)
    parser.add_argument("--prompts", type=int, default=4, choices=range(1, 6))
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--judge", choices=("harmbench", "offline"), default="harmbench",
                        help="offline: the default offline judge (no judge calls; the server "
                             "gives answers a few hundred words long)")
    args = parser.parse_args()

    from tests.support.openai_server import start_server_process

    work = Path(tempfile.mkdtemp(prefix="siegeflow-bench-"))
    goals_file = work / "goals.csv"
    write_goals(goals_file, args.goals)
    responder = "tests.support.long_responder:long_responder" if args.judge == "offline" else None
    with private_prefect_api(work / "prefect"), start_server_process(
            latency_s=args.latency, log_size=10, responder=responder) as server:
        # Warm-up: imports, Prefect client, first flow registration (not measured).
        asyncio.run(run_once(args, server.base_url, goals_file, f"sqlite:///{work}/warm.db", 1))
        empty_wall, _, _ = asyncio.run(
            run_once(args, server.base_url, goals_file, f"sqlite:///{work}/empty.db", 0))
        server.reset()
        wall, cpu, state = asyncio.run(
            run_once(args, server.base_url, goals_file, f"sqlite:///{work}/bench.db", None))
        summary = state.result()
        stats = server.stats()

    calls = args.goals * args.prompts
    floor = calls * args.latency / args.concurrency
    steps = {s.name: s.duration_s for s in summary.steps}
    requests = stats["chat_requests"]
    print(f"pipeline bench: G={args.goals} goals x P={args.prompts} prompts, "
          f"L={args.latency * 1000:.0f} ms, C={args.concurrency}")
    print(f"  requests served: {requests} ({calls} target + {requests - calls} judge), "
          f"max in flight {stats['max_in_flight']}")
    for step in ("Completions", "Evaluation"):
        took = steps.get(step, float("nan"))
        if step == "Evaluation" and args.judge == "offline":
            print(f"  {step:<11} wall {took:7.2f} s   {calls / took:6.1f} judgments/s (offline "
                  f"judge, CPU); completions came at {calls / steps['Completions']:.1f}/s")
            continue
        print(f"  {step:<11} wall {took:7.2f} s   floor {floor:6.2f} s   "
              f"throughput ratio {floor / took:5.2f}")
    print(f"  flow total  wall {wall:7.2f} s   floor {2 * floor:6.2f} s   "
          f"throughput ratio {2 * floor / wall:5.2f}")
    print(f"  CPU per model call: {1000 * cpu / requests:.2f} ms "
          f"(process CPU {cpu:.2f} s / {requests} calls, incl. Prefect, tracking, judging)")
    print(f"  fixed overhead (empty goal list): {empty_wall:.2f} s")
    from reports.figures import summary_asr_text

    print(f"  ASR {summary_asr_text(summary)}, goals {summary.goals_total}")
    print("  load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
