"""CPU per target call through ``chat()``: the lean HTTP path and the litellm path.

The test server runs in another process (latency 50 ms) so only the client's CPU is counted:
``time.process_time()`` of this process over the timed calls, divided by the number of calls.
Budget: ≤ 3 ms CPU per call on the path attack flows use.

    .venv/bin/python bench/target_call_bench.py [--calls 2000] [--concurrency 32] [--profile http]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import targets._env  # noqa: F401  (environment first)
from targets import TargetConfig, chat
from tests.support.openai_server import start_server_process

BUDGET_MS = 3.0


async def _run(config: TargetConfig, calls: int, concurrency: int) -> tuple[float, float, int]:
    semaphore = asyncio.Semaphore(concurrency)
    messages = [{"role": "user", "content": "What is the capital of France?"}]

    async def one() -> bool:
        async with semaphore:
            return (await chat(config, messages)).ok

    for _ in range(concurrency):  # warm up: imports, connection pool, price lookup
        await one()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    oks = await asyncio.gather(*(one() for _ in range(calls)))
    return time.perf_counter() - wall0, time.process_time() - cpu0, sum(oks)


def measure(transport: str, base_url: str, calls: int, concurrency: int, profile: bool) -> float:
    config = TargetConfig(
        model="openai/siegeflow-bench",
        api_base=base_url,
        transport=transport,  # type: ignore[arg-type]  # a name from the command line
        input_cost_per_token=1e-7,
        output_cost_per_token=2e-7,
        max_retries=2,
        timeout_s=30,
    )
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    wall, cpu, ok = asyncio.run(_run(config, calls, concurrency))
    if profiler:
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
        print(out.getvalue())
    per_call_ms = cpu / calls * 1000
    print(
        f"{transport:8s} {calls} calls, concurrency {concurrency}: wall {wall:.2f}s, "
        f"{calls / wall:.0f} calls/s, CPU {cpu:.2f}s = {per_call_ms:.2f} ms/call, ok {ok}/{calls}"
    )
    return per_call_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--transports", default="http,litellm")
    parser.add_argument("--profile", default="", help="comma-separated transports to profile")
    args = parser.parse_args()
    results = {}
    with start_server_process(latency_s=args.latency, log_size=0) as server:
        for transport in args.transports.split(","):
            results[transport] = measure(
                transport, server.base_url, args.calls, args.concurrency, transport in args.profile.split(",")
            )
    lean = results.get("http")
    if lean is not None:
        verdict = "within" if lean <= BUDGET_MS else "OVER"
        print(f"lean path: {lean:.2f} ms CPU/call ({verdict} the {BUDGET_MS:g} ms budget)")
        if lean > BUDGET_MS:
            sys.exit(1)


if __name__ == "__main__":
    main()
