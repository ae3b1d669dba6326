"""Rate limits around `targets.chat`: in-process, shared through Redis across processes, and the
fallback when Redis is unreachable. The local test server counts requests in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from targets import RateLimit, TargetConfig, chat, ratelimit
from tests.ops.support import REDIS_URL, REPO
from tests.support.openai_server import OpenAIServer, start_server_process

MSG = [{"role": "user", "content": "hello"}]


def target(base_url: str, **limit: object) -> TargetConfig:
    return TargetConfig(model="openai/siegeflow-test", api_base=base_url, timeout_s=10,
                        max_retries=0, rate_limit=RateLimit(key=f"t-{uuid.uuid4().hex}", **limit))


async def burst(config: TargetConfig, n: int) -> list[str | None]:
    done = await asyncio.gather(*(chat(config, MSG) for _ in range(n)))
    return [c.error for c in done]


def test_rate_limit_needs_a_limit() -> None:
    with pytest.raises(ValueError, match="rpm and/or max_concurrent"):
        RateLimit()


def test_in_process_concurrency_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ratelimit.REDIS_URL_ENV, raising=False)
    with OpenAIServer(latency_s=0.05) as server:
        errors = asyncio.run(burst(target(server.base_url, max_concurrent=3), 24))
        stats = server.stats()
    assert errors == [None] * 24
    assert stats["chat_requests"] == 24 and stats["max_in_flight"] == 3


def test_in_process_rpm_holds_the_request_past_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ratelimit.REDIS_URL_ENV, raising=False)

    async def scenario(config: TargetConfig) -> None:
        await burst(config, 5)  # the whole minute's budget
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(chat(config, MSG), timeout=0.5)

    with OpenAIServer() as server:
        asyncio.run(scenario(target(server.base_url, rpm=5)))
        assert server.stats()["chat_requests"] == 5


def test_shared_rpm_counts_requests_of_every_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ratelimit.REDIS_URL_ENV, REDIS_URL)
    limit = RateLimit(key=f"t-{uuid.uuid4().hex}", rpm=4)

    async def scenario(base_url: str) -> None:
        a = TargetConfig(model="openai/a", api_base=base_url, max_retries=0, rate_limit=limit)
        b = TargetConfig(model="openai/b", api_base=base_url, max_retries=0, rate_limit=limit)
        await asyncio.gather(burst(a, 2), burst(b, 2))  # one key: four requests in all
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(chat(b, MSG), timeout=0.5)

    with OpenAIServer() as server:
        asyncio.run(scenario(server.base_url))
        assert server.stats()["chat_requests"] == 4


CLIENT = textwrap.dedent("""
    import asyncio, json, sys
    from targets import RateLimit, TargetConfig, chat
    base_url, key, n, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    config = TargetConfig(model="openai/siegeflow-test", api_base=base_url, timeout_s=10,
                          max_retries=0, rate_limit=RateLimit(key=key, max_concurrent=limit))
    async def main():
        done = await asyncio.gather(*(chat(config, [{"role": "user", "content": "hi"}])
                                      for _ in range(n)))
        return [c.error for c in done]
    print(json.dumps(asyncio.run(main())))
""")


def test_shared_concurrency_holds_across_processes() -> None:
    """Two processes, 20 concurrent requests each, one limit of 4: never more than 4 in flight."""
    key = f"t-{uuid.uuid4().hex}"
    env = {**os.environ, ratelimit.REDIS_URL_ENV: REDIS_URL, "PYTHONPATH": str(REPO)}
    with start_server_process(latency_s=0.1) as server:
        procs = [
            subprocess.Popen([sys.executable, "-c", CLIENT, server.base_url, key, "20", "4"],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
            for _ in range(2)
        ]
        try:
            outs = [p.communicate(timeout=120) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(5)
        stats = server.stats()
    for p, (out, errs) in zip(procs, outs, strict=True):
        assert p.returncode == 0, errs[-2000:]
        assert json.loads(out.strip().splitlines()[-1]) == [None] * 20
    assert stats["chat_requests"] == 40
    assert stats["max_in_flight"] == 4


def test_a_killed_holder_leaks_its_slot_only_until_the_lease_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ratelimit.REDIS_URL_ENV, REDIS_URL)
    limit = RateLimit(key=f"t-{uuid.uuid4().hex}", max_concurrent=1)

    async def scenario() -> float:
        shared = ratelimit.SharedLimiter(REDIS_URL)
        token = await shared.acquire(limit.key or "", limit, lease_s=1.0)
        assert token  # never released: as if its process had been SIGKILLed
        started = time.monotonic()
        async with ratelimit.request_slot(limit, model="m", api_base=None, timeout_s=5) as mode:
            assert mode == "shared"
        await shared.client.aclose()
        return time.monotonic() - started

    waited = asyncio.run(scenario())
    assert 0.7 < waited < 3.0


def test_unreachable_redis_falls_back_to_the_in_process_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ratelimit.REDIS_URL_ENV, "redis://127.0.0.1:9/0")  # discard port: refused
    monkeypatch.setattr(ratelimit, "_registry", ratelimit._Registry())
    caplog.set_level(logging.WARNING, logger="siegeflow.targets.ratelimit")
    with OpenAIServer(latency_s=0.05) as server:
        errors = asyncio.run(burst(target(server.base_url, max_concurrent=2), 10))
        stats = server.stats()
    assert errors == [None] * 10
    assert stats["max_in_flight"] == 2
    assert "limiting in-process" in caplog.text


def test_limits_do_not_apply_without_a_rate_limit() -> None:
    with OpenAIServer(latency_s=0.05) as server:
        config = TargetConfig(model="openai/siegeflow-test", api_base=server.base_url)
        asyncio.run(burst(config, 10))
        assert server.stats()["max_in_flight"] == 10


def test_rate_limit_is_a_typed_parameter_in_the_flow_schema() -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.attack import attack_flow

    schema = parameter_schema(attack_flow).model_dump_for_openapi()
    rl = schema["definitions"]["RateLimit"]["properties"]
    assert {"rpm", "max_concurrent", "key", "shared"} <= set(rl)
