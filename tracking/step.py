"""``StepTracker``: pipeline-step tracking (spec 001).

Each ``track_step`` writes one run-level trace (``result_id`` NULL) when the step starts
(status RUNNING, input sample and item counts, config, pending metadata) and completes the
same row when it ends (status COMPLETED / FAILED / CANCELLED, duration, metadata and progress
recorded meanwhile, item counts, and on error the exception type and message). The yielded
value is that trace's id. A crash mid-step therefore leaves a RUNNING step in the store, and
the step's exception is always re-raised. Step writes are synchronous (a handful per run).

Tracking failures degrade per ``tracking.guard``: the step runs anyway, ``track_step`` then
yields None.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Mapping, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tracking.context import TrackingContext
from tracking.enums import EvaluationStatusEnum, StatusEnum
from tracking.models import utcnow
from tracking.redaction import redact_text

_SAMPLE_ITEMS = 3
_MAX_PROGRESS = 100


@dataclass(frozen=True, kw_only=True)
class StepRecord:
    """What happened in one tracked step (kept in memory for ``get_summary``)."""

    name: str
    step_type: str
    status: StatusEnum
    duration_s: float
    trace_id: int | None = None
    error_type: str | None = None
    error_message: str | None = None


@dataclass(kw_only=True)
class _OpenStep:
    """A step between its RUNNING trace and its final one."""

    name: str
    step_type: str
    started: float
    base: dict[str, Any]
    input_counts: dict[str, int]
    start_metadata: dict[str, Any]
    trace_id: int | None = None


class StepTracker:
    """Tracks pipeline steps of one run and updates run/result statuses (spec 001)."""

    def __init__(self, context: TrackingContext) -> None:
        self.context = context
        self.logger = context.logger
        self._lock = threading.Lock()
        self._progress: list[dict[str, Any]] = []
        self._latest_metrics: dict[str, Any] = {}
        self._steps: list[StepRecord] = []

    @property
    def steps(self) -> list[StepRecord]:
        with self._lock:
            return list(self._steps)

    @contextmanager
    def track_step(
        self,
        step_name: str,
        step_type: str,
        input_data: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> Iterator[int | None]:
        """Track one step; yields the step trace id (None when disabled or the store failed)."""
        step = self._open_step(step_name, step_type, input_data, config)
        status: StatusEnum = StatusEnum.COMPLETED
        error: BaseException | None = None
        try:
            yield step.trace_id
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit) as exc:
            status, error = StatusEnum.CANCELLED, exc
            raise
        except BaseException as exc:
            status, error = StatusEnum.FAILED, exc
            raise
        finally:
            self._close_step(step, status, error)

    def _open_step(self, step_name: str, step_type: str, input_data: dict[str, Any] | None,
                   config: dict[str, Any] | None) -> _OpenStep:
        """Write the RUNNING trace and announce the step."""
        ctx = self.context
        step = _OpenStep(
            name=step_name, step_type=step_type, started=time.perf_counter(),
            base={"step": step_name, "started_at": utcnow().isoformat(),
                  "input": _sample(input_data), "config": config},
            input_counts=_item_counts(input_data), start_metadata=self._take_metadata(),
        )
        content = {**step.base, "status": StatusEnum.RUNNING.value,
                   "item_counts": step.input_counts, "metadata": step.start_metadata}
        if ctx.is_enabled:
            step.trace_id = self._write_trace(step_name, step_type, content)
        ctx.events.publish("step_started", {"run_id": ctx.run_id, "step_name": step_name,
                                            "step_type": step_type, "trace_id": step.trace_id})
        return step

    def _close_step(self, step: _OpenStep, status: StatusEnum, error: BaseException | None
                    ) -> None:
        """Write the final trace, keep the step record, announce and log the end."""
        ctx = self.context
        duration = time.perf_counter() - step.started
        progress, metrics = self._take_progress()
        error_message = redact_text(str(error))[:2000] if error is not None else None
        error_type = type(error).__name__ if error is not None else None
        final = {
            **step.base, "status": status.value, "finished_at": utcnow().isoformat(),
            "duration_s": round(duration, 6), "item_counts": {**step.input_counts, **metrics},
            "metadata": {**step.start_metadata, **self._take_metadata()}, "progress": progress,
            "error_type": error_type, "error_message": error_message,
        }
        if step.trace_id is not None:
            ctx.store_call("step_trace", "update_trace", step.trace_id, content=final)
        elif ctx.is_enabled:
            step.trace_id = self._write_trace(step.name, step.step_type, final)
        with self._lock:
            self._steps.append(StepRecord(
                name=step.name, step_type=step.step_type, status=status, duration_s=duration,
                trace_id=step.trace_id, error_type=error_type, error_message=error_message,
            ))
        ctx.events.publish("step_finished", {
            "run_id": ctx.run_id, "step_name": step.name, "step_type": step.step_type,
            "trace_id": step.trace_id, "status": status.value, "duration_s": duration,
            "error_type": error_type,
        })
        if error is None:
            self.logger.debug("step %s completed in %.3fs", step.name, duration)
        else:
            self.logger.warning("step %s %s after %.3fs: %s: %s", step.name,
                                status.value.lower(), duration, error_type, error_message)

    def update_run_status(
        self, status: StatusEnum, *, only_if_status_in: tuple[StatusEnum, ...] | None = None
    ) -> bool:
        """Set the run status; True if the store accepted it.

        ``only_if_status_in`` makes it a compare-and-set (how finalizers avoid overriding a
        FAILED or CANCELLED run). The in-memory status follows a successful change, or the
        intent when tracking is disabled or failed.
        """
        ctx = self.context
        status = StatusEnum(status)
        if only_if_status_in is not None and ctx.run_status is not None:
            if ctx.run_status not in only_if_status_in:
                return False
        if not ctx.is_enabled:
            ctx.run_status = status
            return False
        changed = ctx.store_call(
            "update_run",
            "update_run",
            ctx.run_id,
            status=status,
            only_if_status_in=only_if_status_in,
        )
        if changed or changed is None:  # None: the store failed; memory keeps the intent
            ctx.run_status = status
        return bool(changed)

    def update_result_status(
        self,
        evaluation_status: EvaluationStatusEnum,
        evaluation_notes: str | None = None,
        agent_specific_data: dict[str, Any] | None = None,
    ) -> bool:
        """Set the evaluation status of the context's ``parent_result_id``; True on success."""
        ctx = self.context
        if not ctx.is_enabled or ctx.parent_result_id is None:
            return False
        return bool(
            ctx.store_call(
                "update_result",
                "update_result",
                ctx.parent_result_id,
                evaluation_status=EvaluationStatusEnum(evaluation_status),
                evaluation_notes=evaluation_notes,
                agent_specific_data=agent_specific_data,
                default=False,
            )
        )

    def add_step_metadata(self, key: str, value: Any) -> None:
        """Attach metadata to the next step trace write (JSON-serialisable; redacted)."""
        with self._lock:
            self.context.metadata[key] = value

    def record_progress(self, message: str, **metrics: Any) -> None:
        """Record intermediate progress; numeric metrics also update the step's item counts."""
        entry = {"at": utcnow().isoformat(), "message": message, "metrics": metrics}
        with self._lock:
            self._progress.append(entry)
            del self._progress[:-_MAX_PROGRESS]
            self._latest_metrics.update(
                {
                    k: v
                    for k, v in metrics.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            )
        self.logger.debug("progress: %s %s", redact_text(message), redact_text(str(metrics)))

    # -- internals -----------------------------------------------------------------------

    def _write_trace(self, step_name: str, step_type: str, content: dict[str, Any]) -> int | None:
        sequence: int | None = self.context.store_call(
            "step_trace",
            "create_trace",
            run_id=self.context.run_id,
            step_name=step_name,
            step_type=step_type,
            content=content,
        )
        return sequence

    def _take_metadata(self) -> dict[str, Any]:
        with self._lock:
            taken = dict(self.context.metadata)
            self.context.metadata.clear()
            return taken

    def _take_progress(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        with self._lock:
            progress, metrics = self._progress, self._latest_metrics
            self._progress, self._latest_metrics = [], {}
            return progress, metrics


def _sample(input_data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A small sample of the step input: long lists are cut to their first items."""
    if input_data is None:
        return None
    if not isinstance(input_data, Mapping):
        return {"value": input_data}
    return {
        key: list(value[:_SAMPLE_ITEMS]) if isinstance(value, list | tuple) else value
        for key, value in input_data.items()
    }


def _item_counts(input_data: Mapping[str, Any] | None) -> dict[str, int]:
    if not isinstance(input_data, Mapping):
        return {}
    return {
        f"input.{key}": len(value)
        for key, value in input_data.items()
        if isinstance(value, Sized) and not isinstance(value, str | bytes)
    }
