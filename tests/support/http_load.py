"""A minimal keep-alive HTTP/1.1 load generator for the test server.

Why not httpx: measuring the server's throughput needs a client that costs less CPU than the
server (both share two cores). Each of ``concurrency`` connections sends requests one after
another until ``total`` requests have been sent; loops are bounded by count and by ``deadline_s``.

    python -m tests.support.http_load --url http://127.0.0.1:PORT/v1 --concurrency 64 --total 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    requests: int
    errors: int
    wall_s: float
    client_cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s if self.wall_s else 0.0


async def _worker(host: str, port: int, request: bytes, budget: list[int], deadline: float) -> tuple[int, int]:
    reader, writer = await asyncio.open_connection(host, port)
    done = errors = 0
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            done += 1
            errors += status != 200
    finally:
        writer.close()
    return done, errors


async def run_load(
    url: str, *, concurrency: int, total: int, deadline_s: float = 120.0, prompt: str = "Hello there"
) -> LoadResult:
    """Send ``total`` chat requests over ``concurrency`` keep-alive connections."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path.rstrip("/") + "/chat/completions"
    body = json.dumps({"model": "load", "messages": [{"role": "user", "content": prompt}]}).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    budget = [total]
    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + deadline_s
    results = await asyncio.gather(
        *(_worker(host, port, request, budget, deadline) for _ in range(concurrency))
    )
    wall = time.perf_counter() - t0
    return LoadResult(
        requests=sum(r[0] for r in results),
        errors=sum(r[1] for r in results),
        wall_s=wall,
        client_cpu_s=time.process_time() - cpu0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="load the local OpenAI test server")
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--total", type=int, default=5000)
    args = parser.parse_args()
    res = asyncio.run(run_load(args.url, concurrency=args.concurrency, total=args.total))
    print(
        f"{res.requests} requests ({res.errors} errors) in {res.wall_s:.2f}s: {res.rps:.0f} req/s, "
        f"client CPU {res.client_cpu_s:.2f}s"
    )


if __name__ == "__main__":
    main()
