"""Cost of a shared request limit: Redis slots per request vs Prefect global concurrency limits.

Measures, in one process on this machine:

1. Redis (``targets.ratelimit``): acquire + release of one slot, sequential (µs per pair), with
   and without the rpm window; and N "requests" of ``--hold`` seconds through a limit of L
   slots from C coroutines, against the floor N * hold / L.
2. Prefect global concurrency limits on a local server (SQLite): ``concurrency(name)`` acquire
   + release, sequential (ms per pair); the same N requests with one acquisition per request;
   and per batch (one ``occupy=L`` acquisition per L requests).

    .venv/bin/python bench/ratelimit_bench.py [--requests 64] [--limit 4] [--hold 0.05]

Talks only to 127.0.0.1: the Redis server (``SIEGEFLOW_REDIS_URL`` or 127.0.0.1:6379) and a
Prefect server it starts and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import targets._env  # noqa: F401  (environment first)
from targets import ratelimit
from targets.ratelimit import RateLimit

REDIS_URL = os.environ.get(ratelimit.REDIS_URL_ENV, "redis://127.0.0.1:6379/0")


async def redis_pairs(n: int, rpm: int | None) -> float:
    limit = RateLimit(key=f"bench-{uuid.uuid4().hex}", max_concurrent=64, rpm=rpm)
    for _ in range(20):  # warm up: connection, script load
        async with ratelimit.request_slot(limit, model="m", api_base=None, timeout_s=30):
            pass
    start = time.perf_counter()
    for _ in range(n):
        async with ratelimit.request_slot(limit, model="m", api_base=None, timeout_s=30) as mode:
            assert mode == "shared"
    return (time.perf_counter() - start) / n


async def redis_contended(requests: int, limit_n: int, hold: float, callers: int) -> float:
    limit = RateLimit(key=f"bench-{uuid.uuid4().hex}", max_concurrent=limit_n)
    gate = asyncio.Semaphore(callers)

    async def one() -> None:
        async with gate:
            async with ratelimit.request_slot(limit, model="m", api_base=None, timeout_s=30):
                await asyncio.sleep(hold)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    return time.perf_counter() - start


async def prefect_measures(requests: int, limit_n: int, hold: float, callers: int) -> dict[str, float]:
    from prefect.client.orchestration import get_client
    from prefect.concurrency.asyncio import concurrency

    name = f"bench-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.upsert_global_concurrency_limit_by_name(name, limit_n)
    out: dict[str, float] = {}
    for _ in range(3):  # warm up
        async with concurrency(name, occupy=1):
            pass
    start = time.perf_counter()
    pairs = 20
    for _ in range(pairs):
        async with concurrency(name, occupy=1):
            pass
    out["pair_s"] = (time.perf_counter() - start) / pairs
    gate = asyncio.Semaphore(callers)

    async def one() -> None:
        async with gate:
            async with concurrency(name, occupy=1, timeout_seconds=300):
                await asyncio.sleep(hold)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    out["per_request_s"] = time.perf_counter() - start

    async def batch() -> None:
        async with concurrency(name, occupy=limit_n, timeout_seconds=300):
            await asyncio.gather(*(asyncio.sleep(hold) for _ in range(limit_n)))

    start = time.perf_counter()
    for _ in range(requests // limit_n):
        await batch()
    out["per_batch_s"] = time.perf_counter() - start
    async with get_client() as client:
        await client.delete_global_concurrency_limit_by_name(name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--hold", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--callers", type=int, default=16, help="coroutines contending")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--skip-prefect", action="store_true")
    args = parser.parse_args()
    os.environ[ratelimit.REDIS_URL_ENV] = REDIS_URL
    floor = args.requests * args.hold / args.limit
    print(f"requests={args.requests} limit={args.limit} hold={args.hold}s callers={args.callers} "
          f"-> floor {floor:.2f} s")
    pair = asyncio.run(redis_pairs(args.pairs, None))
    pair_rpm = asyncio.run(redis_pairs(args.pairs, 10**6))
    contended = asyncio.run(redis_contended(args.requests, args.limit, args.hold, args.callers))
    print(f"redis: acquire+release {pair * 1e3:.3f} ms (with rpm window {pair_rpm * 1e3:.3f} ms); "
          f"contended {contended:.2f} s ({contended / floor:.2f}x floor)")
    if args.skip_prefect:
        return
    from flows.server import LocalPrefectServer, _drain_prefect_workers

    with tempfile.TemporaryDirectory(prefix="sf-rl-bench-") as home:
        server = LocalPrefectServer(home=Path(home))
        server.start()
        try:
            url = server.wait_ready()
            from prefect.settings import PREFECT_API_URL, temporary_settings

            with temporary_settings(updates={PREFECT_API_URL: url}):
                got = asyncio.run(prefect_measures(args.requests, args.limit, args.hold, args.callers))
                _drain_prefect_workers()
        finally:
            server.stop()
    print(f"prefect GCL: acquire+release {got['pair_s'] * 1e3:.1f} ms; per request "
          f"{got['per_request_s']:.2f} s ({got['per_request_s'] / floor:.1f}x floor); per batch of "
          f"{args.limit} {got['per_batch_s']:.2f} s ({got['per_batch_s'] / floor:.2f}x floor)")


if __name__ == "__main__":
    main()
