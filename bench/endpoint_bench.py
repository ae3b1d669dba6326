"""The HTTP app target's in-run throughput next to the model path's, against the latency floor.

One local server (another process, so its CPU is not counted) answers every request after a
fixed latency L. `attack_flow` runs G goals x P prompts at concurrency C twice: once with the
model path (`openai/...` + `api_base`, the lean OpenAI transport) and once with an HTTP app
target (`endpoint:` section: templated JSON body, `{conversation}`, a JSON-path answer) posting
to the same server's chat route. Judged by the rule-based `refusal` judge (no judge calls), so
the Completions step is the one that waits on the target. Printed per path: the Completions
step's wall time, its floor G*P*L/C, and floor/wall (1.0 = no overhead; the model path reaches
>= 0.9 at 2,000 calls, see pipeline_bench.py), plus CPU per call and the load average.

    .venv/bin/python bench/endpoint_bench.py [--goals 500] [--prompts 4] [--latency 0.2]
        [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from pipeline_bench import timed_attack_flow, write_goals  # noqa: E402

from flows.server import private_prefect_api  # noqa: E402 - after the Prefect environment


def target_for(kind: str, base_url: str) -> Any:
    from targets import TargetConfig

    if kind == "model":
        return TargetConfig(model="openai/bench-target", api_base=base_url, max_retries=2,
                            timeout_s=30)
    return TargetConfig(model="http:bench-app", max_retries=2, timeout_s=30, endpoint={
        "url": base_url + "/chat/completions",
        "body": {"model": "bench-target", "messages": "{conversation}",
                 "metadata": {"session": "{session_id}", "goal": "{goal_id}"}},
        "response": {"json_path": "choices[0].message.content"},
    })


async def run_once(kind: str, args: argparse.Namespace, base_url: str, goals_file: Path,
                   db_url: str, limit: int | None) -> tuple[float, float, Any]:
    from flows.config import JudgePanelSpec

    judges = JudgePanelSpec(judges=[{"name": "refusal"}], rule="any")
    return await timed_attack_flow(target_for(kind, base_url), judges, args, goals_file, db_url,
                                   limit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--goals", type=int, default=500)
    parser.add_argument("--prompts", type=int, default=4, choices=range(1, 6))
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    from tests.support.openai_server import start_server_process

    work = Path(tempfile.mkdtemp(prefix="siegeflow-endpoint-bench-"))
    goals_file = work / "goals.csv"
    write_goals(goals_file, args.goals)
    calls = args.goals * args.prompts
    floor = calls * args.latency / args.concurrency
    print(f"endpoint bench: G={args.goals} goals x P={args.prompts} prompts = {calls} calls, "
          f"L={args.latency * 1000:.0f} ms, C={args.concurrency}, floor {floor:.2f} s")
    with private_prefect_api(work / "prefect"), start_server_process(
            latency_s=args.latency, log_size=10) as server:
        for kind in ("model", "http"):
            asyncio.run(run_once(kind, args, server.base_url, goals_file,
                                 f"sqlite:///{work}/{kind}-warm.db", 1))
            server.reset()
            wall, cpu, state = asyncio.run(run_once(
                kind, args, server.base_url, goals_file, f"sqlite:///{work}/{kind}.db", None))
            summary = state.result()
            stats = server.stats()
            took = {s.name: s.duration_s for s in summary.steps}["Completions"]
            print(f"  {kind:<6} target: requests {stats['chat_requests']}, max in flight "
                  f"{stats['max_in_flight']}; Completions wall {took:6.2f} s, floor "
                  f"{floor:6.2f} s, throughput ratio {floor / took:5.3f}; flow wall {wall:6.2f} s,"
                  f" CPU {1000 * cpu / calls:.2f} ms per call")
            print("         load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
