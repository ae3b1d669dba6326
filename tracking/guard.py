"""Graceful degradation: tracking failures never stop an attack, and are never silent.

Spec 001 says tracking "fails gracefully": if the store (or the event bus) fails, the attack
goes on. The store itself raises; the trackers route every store and event-bus call through
``TrackingErrors.call``, which is the single place in the package that catches ``Exception``
broadly. Each failure is counted by kind (``get_summary()["tracking_errors"]``) and the first
failure of each kind is logged once, with secrets scrubbed; later ones are only counted, so
an unreachable database does not flood the log. ``BaseException`` (cancellation, Ctrl-C)
is never swallowed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tracking.redaction import redact, redact_text
from tracking.writer import TraceWriteError

T = TypeVar("T")

DEFAULT_LOGGER_NAME = "siegeflow.tracking"


class TrackingErrors:
    """Per-kind failure counter that logs the first failure of each kind once."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(DEFAULT_LOGGER_NAME)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def record(self, kind: str, exc: BaseException, count: int = 1) -> None:
        """Count ``count`` failures of ``kind``; log only the first of that kind."""
        with self._lock:
            first = kind not in self._counts
            self._counts[kind] = self._counts.get(kind, 0) + count
        if first:
            self.logger.warning(
                "tracking: %s failed (%s: %s); the attack goes on, further %s failures are "
                "counted in get_summary()['tracking_errors'] and not logged again",
                kind,
                type(exc).__name__,
                redact_text(str(exc))[:500],
                kind,
            )

    def call(
        self, kind: str, fn: Callable[..., T], *args: Any, default: Any = None, **kwargs: Any
    ) -> T | Any:
        """Run a store/event-bus call; on failure count it and return ``default``."""
        try:
            return fn(*args, **kwargs)
        except TraceWriteError as exc:  # rows lost by the background writer
            self.record("trace_write", exc, count=exc.lost)
            return default
        except Exception as exc:  # noqa: BLE001 - the documented "fail gracefully" rule
            self.record(kind, exc)
            return default

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


class EventPublisher:
    """Forwards lifecycle events to an optional event bus, degrading like the store.

    The bus is an object with ``publish(event_name, payload)`` or a callable
    ``(event_name, payload)``. Payloads are redacted copies.
    """

    def __init__(self, bus: Any, errors: TrackingErrors) -> None:
        if bus is not None and not callable(getattr(bus, "publish", None)) and not callable(bus):
            raise TypeError("event_bus must have a publish(name, payload) method or be callable")
        self._bus = bus
        self._errors = errors

    @property
    def enabled(self) -> bool:
        return self._bus is not None

    def publish(self, event: str, payload: Mapping[str, Any]) -> None:
        if self._bus is None:
            return
        publish = getattr(self._bus, "publish", None)
        target = publish if callable(publish) else self._bus
        self._errors.call("event_bus", target, event, redact(dict(payload)))
