"""Request limits per target (and per judge model) that hold across every worker and flow run.

A `RateLimit` on a `TargetConfig` caps requests per minute (`rpm`) and requests in flight
(`max_concurrent`). `targets.chat` holds one slot around each HTTP attempt (retries included,
backoff sleeps excluded), so the target, the judges' models and an attacker model are all
covered by the one call path.

Where the limit lives:

* **Shared** — when `SIEGEFLOW_REDIS_URL` (e.g. `redis://127.0.0.1:6379/0`) is set and the
  server answers. Concurrency is a lease semaphore: a sorted set of `token -> lease expiry`
  changed by one Lua script on Redis's own clock, so every machine sees the same count and a
  process killed while holding slots leaks them only until its leases run out (`timeout_s` +
  10 s). The request rate is `limits`' moving window (`MovingWindowRateLimiter` on the same
  Redis). Slots are taken concurrency first, then rate, so a rate token is never spent by a
  request still queueing for a slot. In each process only one coroutine per key polls Redis
  while the limit is full (the others queue on a local lock), so a full limit costs one
  round trip per ~5 ms per process, not one per waiting request.
* **In-process** — when nothing is configured, or Redis is unreachable (logged once, retried
  after 30 s): the same two limits kept per event loop. With N processes this is N times the
  limit, which is why the shared mode exists.

Why not a Prefect global concurrency limit per request — measured with
`bench/ratelimit_bench.py` on this 2-core box (local Prefect server on SQLite, Redis 7 on
loopback, load average ~4.7 from other work; 64 requests of 50 ms through a limit of 4 from 16
coroutines, floor 0.8 s):

* Prefect GCL, `concurrency(name, occupy=1)` acquire + release, uncontended: 208 ms a pair.
  One acquisition per request: 25.8 s for the 64 requests (32x the floor) — a refused
  acquisition retries after seconds; earlier here: limit 2, eight 0.3 s tasks took 38 s and a
  lease renewal got 410 Gone.
* Prefect GCL per *batch* (one `occupy=4` acquisition per 4 requests): 5.1 s (6.4x the floor):
  ~0.27 s of orchestration per batch, and a batch holds all its slots until its slowest
  request ends.
* Redis lease semaphore (this module): 0.27-0.64 ms per acquire + release (0.38-0.87 ms with
  the rpm window too), load-dependent; 0.86-1.03 s for the 64 requests (1.08-1.29x the floor);
  640 requests of 200 ms through 64 slots from 128 coroutines: 2.4-3.3 s against a 2.0 s floor
  (1.2-1.6x, the Redis server and the waiters sharing the two loaded cores).

So requests acquire Redis slots one at a time; Prefect concurrency limits stay what they are
good at (deployments, work pools, tags), configured in `prefect.yaml`.

Keys: `rate_limit.key` names the shared budget (e.g. one provider account used by two models);
by default it is `model@api_base`. Different configs may name the same key with different
numbers: each caller enforces its own cap against the shared count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from settings import current_settings

logger = logging.getLogger("siegeflow.targets.ratelimit")

REDIS_URL_ENV = "SIEGEFLOW_REDIS_URL"
#: While a shared limit is full, the head-of-line waiter of each process polls this often.
POLL_S = 0.005
#: After Redis failed, stay in-process this long before trying it again.
REDIS_RETRY_S = 30.0
#: A slot's lease is the call's timeout plus this margin (a killed holder leaks it this long).
LEASE_MARGIN_S = 10.0
_PREFIX = "siegeflow:rl"


class RateLimit(BaseModel):
    """Requests per minute and requests in flight for one target, across all workers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpm: int | None = Field(None, ge=1, description="Requests per minute (moving 60 s window)")
    max_concurrent: int | None = Field(None, ge=1, description="Requests in flight at once")
    key: str | None = Field(
        None, min_length=1, max_length=200,
        description="Budget shared by every config naming it (default: model@api_base)",
    )
    shared: bool = Field(
        True, description=f"Share through Redis when ${REDIS_URL_ENV} is set (else in-process)"
    )

    @model_validator(mode="after")
    def _something_to_limit(self) -> RateLimit:
        if self.rpm is None and self.max_concurrent is None:
            raise ValueError("rate_limit needs rpm and/or max_concurrent")
        return self


# ----- in-process ------------------------------------------------------------------------------


@dataclass
class _LocalKey:
    """One key's state in one event loop."""

    in_flight: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    sent: deque[float] = field(default_factory=deque)  # monotonic send times, last 60 s


class LocalLimiter:
    """Both limits for one event loop (asyncio primitives belong to a loop)."""

    def __init__(self) -> None:
        self._keys: dict[str, _LocalKey] = {}

    def _state(self, key: str) -> _LocalKey:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _LocalKey()
        return state

    async def acquire(self, key: str, limit: RateLimit) -> None:
        state = self._state(key)
        cap = limit.max_concurrent
        if cap is not None:
            async with state.changed:
                await state.changed.wait_for(lambda: state.in_flight < cap)
                state.in_flight += 1
        try:
            if limit.rpm is not None:
                await _local_rate(state.sent, limit.rpm)
        except BaseException:
            if limit.max_concurrent is not None:
                await self.release(key, limit)
            raise

    async def release(self, key: str, limit: RateLimit) -> None:
        if limit.max_concurrent is None:
            return
        state = self._state(key)
        async with state.changed:
            state.in_flight -= 1
            state.changed.notify(1)


async def _local_rate(sent: deque[float], rpm: int) -> None:
    while True:
        now = time.monotonic()
        while sent and now - sent[0] >= 60.0:
            sent.popleft()
        if len(sent) < rpm:
            sent.append(now)
            return
        await asyncio.sleep(sent[0] + 60.0 - now)


# ----- shared (Redis) --------------------------------------------------------------------------

# KEYS[1] the slot set; ARGV: limit, lease (ms), token. Redis's clock, so machines agree.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
if redis.call('PTTL', KEYS[1]) < lease then
  redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
"""


class SharedLimiter:
    """Both limits on one Redis server, for one event loop (redis-py's asyncio client is)."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter

        self.url = url
        self.client = aioredis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=5.0)
        self._acquire_script = self.client.register_script(_ACQUIRE)
        storage_url = "async+" + url if not url.startswith("async+") else url
        self._window = MovingWindowRateLimiter(
            RedisStorage(storage_url, implementation="redispy", key_prefix=_PREFIX,
                         socket_connect_timeout=1.0, socket_timeout=5.0)
        )
        self._heads: dict[str, asyncio.Lock] = {}
        self._freed: dict[str, asyncio.Event] = {}  # a slot released by this process

    async def ping(self) -> None:
        await self.client.ping()

    async def acquire(self, key: str, limit: RateLimit, lease_s: float) -> str | None:
        """Take a slot (returns its token) and a rate token; wait while either is exhausted."""
        token: str | None = None
        if limit.max_concurrent is not None:
            token = uuid.uuid4().hex
            args: list[int | str] = [limit.max_concurrent, int(lease_s * 1000), token]
            slots = [f"{_PREFIX}:slots:{key}"]
            head = self._heads.get(key)
            # Fast path when nobody of this process is queueing; otherwise queue behind the
            # head of line, the one coroutine per process and key that polls Redis.
            if (head is not None and head.locked()) or not await self._acquire_script(
                keys=slots, args=args
            ):
                head = self._heads.setdefault(key, asyncio.Lock())
                freed = self._freed.setdefault(key, asyncio.Event())
                async with head:
                    while True:
                        freed.clear()
                        if await self._acquire_script(keys=slots, args=args):
                            break
                        # Another process's release is seen at the next poll, ours at once.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(freed.wait(), POLL_S * (0.5 + random.random()))
        try:
            if limit.rpm is not None:
                await self._rate(key, limit.rpm)
        except BaseException:
            if token is not None:
                await self.release(key, token)
            raise
        return token

    async def _rate(self, key: str, rpm: int) -> None:
        from limits import RateLimitItemPerMinute

        item = RateLimitItemPerMinute(rpm)
        while not await self._window.hit(item, "rpm", key):
            stats = await self._window.get_window_stats(item, "rpm", key)
            await asyncio.sleep(max(POLL_S, stats.reset_time - time.time()) + random.random() * 0.05)

    async def release(self, key: str, token: str) -> None:
        await self.client.zrem(f"{_PREFIX}:slots:{key}", token)
        freed = self._freed.get(key)
        if freed is not None:
            freed.set()


# ----- selection ------------------------------------------------------------------------------


class _Registry:
    """Per event loop: the local limiter and the shared one (None when Redis is not usable)."""

    def __init__(self) -> None:
        self.loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self.down_until: dict[str, float] = {}

    def for_loop(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        entry = self.loops.get(loop)
        if entry is None:
            entry = self.loops[loop] = {"local": LocalLimiter(), "shared": {}}
        return entry

    def mark_down(self, url: str, exc: BaseException) -> None:
        if self.down_until.get(url, 0.0) < time.monotonic():
            logger.warning(
                "rate limits: Redis at %s unusable (%s: %s); limiting in-process for %.0f s "
                "(each process then allows the full limit)",
                _safe(url), type(exc).__name__, exc, REDIS_RETRY_S,
            )
        self.down_until[url] = time.monotonic() + REDIS_RETRY_S
        for entry in list(self.loops.values()):
            entry["shared"].pop(url, None)


_registry = _Registry()


def _safe(url: str) -> str:
    head, sep, tail = url.rpartition("@")
    return f"redis://***@{tail}" if sep else url


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


async def _shared(url: str) -> SharedLimiter | None:
    if _registry.down_until.get(url, 0.0) > time.monotonic():
        return None
    entry = _registry.for_loop()
    limiter: SharedLimiter | None = entry["shared"].get(url)
    if limiter is None:
        limiter = SharedLimiter(url)
        try:
            await limiter.ping()
        except _redis_errors() as exc:
            _registry.mark_down(url, exc)
            return None
        entry["shared"][url] = limiter
    return limiter


def limit_key(model: str, api_base: str | None, limit: RateLimit) -> str:
    return limit.key or f"{model}@{api_base or ''}"


def shared_url() -> str | None:
    return current_settings().redis_url


@contextlib.asynccontextmanager
async def request_slot(
    limit: RateLimit | None, *, model: str, api_base: str | None, timeout_s: float
) -> AsyncIterator[str]:
    """Hold one request's slot of `limit` (no-op for None); yields "shared", "local" or "none"."""
    if limit is None:
        yield "none"
        return
    key = limit_key(model, api_base, limit)
    url = shared_url() if limit.shared else None
    shared = await _shared(url) if url else None
    if shared is not None:
        try:
            token = await shared.acquire(key, limit, timeout_s + LEASE_MARGIN_S)
        except _redis_errors() as exc:
            _registry.mark_down(shared.url, exc)
        else:
            try:
                yield "shared"
            finally:
                if token is not None:
                    try:
                        await shared.release(key, token)
                    except _redis_errors() as exc:  # the lease expires on its own
                        logger.info("rate limits: release failed (%s); lease will expire", exc)
            return
    local: LocalLimiter = _registry.for_loop()["local"]
    await local.acquire(key, limit)
    try:
        yield "local"
    finally:
        await local.release(key, limit)
