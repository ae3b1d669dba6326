"""Progress of a step, shown in two places: the Prefect UI and, when one is listening, the CLI.

The Prefect side is a progress artifact per step, updated at most every `every_s` seconds
(artifact updates are API calls; one per completion would cost more than the completion). The
local side is an optional in-process listener — the CLI's rich progress bar — which is simply
absent when the flow runs on a remote worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

#: (step, done, total) -> None; set by the CLI for the duration of a run.
ProgressListener = Callable[[str, int, int], None]
_listener: ProgressListener | None = None


def set_listener(listener: ProgressListener | None) -> None:
    global _listener
    _listener = listener


class StepProgress:
    """Reports one step's progress to the listener (every call) and to Prefect (throttled)."""

    def __init__(self, step: str, key: str, total: int, every_s: float = 2.0) -> None:
        self.step = step
        self.key = key
        self.total = total
        self.every_s = every_s
        self.done = 0
        self._artifact_id: UUID | None = None
        self._last = 0.0

    async def start(self) -> None:
        from prefect.artifacts import acreate_progress_artifact

        self._artifact_id = await acreate_progress_artifact(
            progress=100.0 if self.total == 0 else 0.0,
            key=self.key,
            description=f"{self.step}: 0/{self.total}",
        )
        self._last = time.monotonic()
        if _listener is not None:
            _listener(self.step, 0, self.total)

    async def advance(self, n: int = 1, *, force: bool = False) -> None:
        self.done += n
        if _listener is not None:
            _listener(self.step, self.done, self.total)
        now = time.monotonic()
        if self._artifact_id is None or (not force and now - self._last < self.every_s):
            return
        self._last = now
        from prefect.artifacts import aupdate_progress_artifact

        percent = 100.0 if self.total == 0 else round(100.0 * self.done / self.total, 1)
        await aupdate_progress_artifact(
            artifact_id=self._artifact_id,
            progress=percent,
            description=f"{self.step}: {self.done}/{self.total}",
        )

    async def finish(self) -> None:
        await self.advance(0, force=True)
