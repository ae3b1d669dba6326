"""EventChannel throughput and round-trip latency.

One round trip = the controller sends a ControllablePreCallEvent, the optimizer receives it and
responds with a (validated) ControllableInjection, the controller gets the response back.

  (a) same loop:   sender and receiver are tasks of one event loop
  (b) two loops:   each side in its own thread under its own asyncio.run() (Prefect's case)

Each is measured with one event in flight (latency) and with 16 concurrent senders
(throughput). A plain asyncio.Queue + Future in one loop is printed as a reference point.

    python bench/channel_bench.py [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optimizers import (  # noqa: E402
    Controllable,
    ControllableInjection,
    ControllablePreCallEvent,
    EventChannel,
)

USER = Controllable(name="user_turn", domain="user_input")
TIMEOUT_S = 120.0


async def optimizer(channel: EventChannel) -> int:
    handled = 0
    async for envelope in channel:
        event = envelope.event
        envelope.respond(ControllableInjection(event=event, controllable=event.controllable, value="x"))
        handled += 1
    return handled


async def controller(channel: EventChannel, events: int, senders: int) -> tuple[float, list[float]]:
    """Returns (wall seconds, per-event round trips in seconds)."""
    latencies: list[float] = []
    per_sender = events // senders

    async def sender() -> None:
        for _ in range(per_sender):
            start = time.perf_counter()
            await channel.send(ControllablePreCallEvent(controllable=USER, request="q"), timeout=TIMEOUT_S)
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    return time.perf_counter() - began, latencies


def same_loop(events: int, senders: int) -> tuple[float, list[float]]:
    async def main() -> tuple[float, list[float]]:
        channel = EventChannel()
        consumer = asyncio.create_task(optimizer(channel))
        result = await controller(channel, events, senders)
        channel.close()
        await asyncio.wait_for(consumer, TIMEOUT_S)
        return result

    return asyncio.run(main())


def two_loops(events: int, senders: int) -> tuple[float, list[float]]:
    channel = EventChannel()
    thread = threading.Thread(target=lambda: asyncio.run(optimizer(channel)), daemon=True)
    thread.start()

    async def main() -> tuple[float, list[float]]:
        result = await controller(channel, events, senders)
        channel.close()
        return result

    result = asyncio.run(main())
    thread.join(TIMEOUT_S)
    if thread.is_alive():
        raise RuntimeError("optimizer thread did not stop")
    return result


def queue_reference(events: int, senders: int) -> tuple[float, list[float]]:
    """asyncio.Queue of (event, Future) in one loop: the single-loop design we could not use."""

    async def main() -> tuple[float, list[float]]:
        queue: asyncio.Queue = asyncio.Queue()

        async def consume() -> None:
            while True:
                item = await queue.get()
                if item is None:
                    return
                event, future = item
                future.set_result(ControllableInjection(event=event, controllable=event.controllable, value="x"))

        consumer = asyncio.create_task(consume())
        latencies: list[float] = []
        loop = asyncio.get_running_loop()

        async def sender() -> None:
            for _ in range(events // senders):
                start = time.perf_counter()
                future = loop.create_future()
                await queue.put((ControllablePreCallEvent(controllable=USER, request="q"), future))
                await future
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(senders)))
        wall = time.perf_counter() - began
        await queue.put(None)
        await consumer
        return wall, latencies

    return asyncio.run(main())


def report(name: str, wall: float, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    print(
        f"  {name:<36} {len(latencies) / wall:>10,.0f} ev/s   "
        f"median {statistics.median(latencies) * 1e6:>8.1f} µs   p99 {p99 * 1e6:>8.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    events = args.events
    same_loop(1000, 1)  # warm-up (imports, allocator)
    two_loops(1000, 1)
    print(f"EventChannel round trips ({events:,} events per row; send -> respond -> response)")
    for senders in (1, 16):
        print(f" {senders} sender(s) in flight:")
        report("(a) same loop", *same_loop(events, senders))
        report("(b) two threads, two loops", *two_loops(events, senders))
        report("(ref) asyncio.Queue + Future, one loop", *queue_reference(events, senders))


if __name__ == "__main__":
    main()
