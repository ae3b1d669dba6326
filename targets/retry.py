"""Backoff between attempts: exponential with full jitter, or the server's ``Retry-After``.

Why full jitter: many concurrent callers hitting a rate limit at once must not retry in lockstep.
"""

from __future__ import annotations

import email.utils
import random
import time


def backoff_delay(
    attempt: int,
    *,
    initial_s: float,
    max_s: float,
    retry_after_s: float | None = None,
    rand: float | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    With ``retry_after_s`` the server's wish is honoured, capped at ``max_s``; otherwise a uniform
    draw in ``[0, min(max_s, initial_s * 2**(attempt-1))]``.
    """
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), max_s)
    ceiling = min(max_s, initial_s * (2.0 ** (attempt - 1)))
    return ceiling * (random.random() if rand is None else rand)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
