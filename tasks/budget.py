"""A run's USD budget, shared by the steps that spend it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Budget:
    """Spend against an optional limit; `exhausted` is checked *before* each paid call.

    Calls already in flight when the limit is crossed still complete and are recorded, so a run
    may overshoot by at most `concurrency` calls' cost; nothing new starts after that.
    """

    limit_usd: float | None
    spent_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def exhausted(self) -> bool:
        return self.limit_usd is not None and self.spent_usd >= self.limit_usd

    def add(self, cost_usd: float) -> None:
        with self._lock:
            self.spent_usd += cost_usd
