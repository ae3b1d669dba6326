"""Flow state hooks: a failed, crashed or cancelled flow run leaves no goal unfinalized.

Prefect calls each hook with `(flow, flow_run, state)`. SIGTERM ends in Crashed (→ on_crashed),
a timeout in Failed (→ on_failure); SIGKILL runs nothing in-process, which is why a run also
carries a heartbeat and `siegeflow resume` can finish it later.

The hook finds the siegeflow run from the Prefect flow run id recorded on it, so it works for
fresh and resumed runs alike.
"""

from __future__ import annotations

import logging
from typing import Any

from flows.run_record import attach_coordinator
from tracking import StatusEnum, StoreUnavailableError, default_db_url, get_backend

logger = logging.getLogger("siegeflow.flows")


def _runs_of(flow_run: Any) -> tuple[Any, list[Any]]:
    params = getattr(flow_run, "parameters", None) or {}
    backend = get_backend(params.get("db_url") or default_db_url())
    if params.get("shard"):  # a shard of a sharded run: its parent finalizes the run
        return backend, []
    runs = backend.list_runs(prefect_flow_run_id=str(flow_run.id))
    if not runs and params.get("resume_run_id"):
        run = backend.get_run(params["resume_run_id"])
        runs = [run] if run is not None else []
    return backend, runs


def _finalize(flow_run: Any, state: Any, status: StatusEnum) -> None:
    """Finalize the flow run's siegeflow runs. A hook must not raise (Prefect would log its
    traceback on top of the flow's own): a store that cannot be reached is logged in one line,
    and the run stays resumable (`siegeflow runs stale`, `siegeflow resume`)."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        _finalize_runs(flow_run, state, status)
    except (SQLAlchemyError, StoreUnavailableError) as exc:
        logger.error("could not finalize the run of Prefect flow run %s after %s: the store "
                     "is unreachable (%s); `siegeflow resume` finishes it later",
                     getattr(flow_run, "id", "?"), state.name, _one_line(exc))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]


def _finalize_runs(flow_run: Any, state: Any, status: StatusEnum) -> None:
    backend, runs = _runs_of(flow_run)
    message = f"Prefect flow run {state.name}: {state.message or 'no message'}"
    for run in runs:
        coordinator = attach_coordinator(backend, run.id, logger=logger)
        coordinator.finalize_on_error(message)
        if status is not StatusEnum.FAILED:
            coordinator.step_tracker.update_run_status(status)
        logger.warning("run %s finalized after %s", run.id, state.name)


def finalize_run(db_url: str, run_id: str, message: str) -> None:
    """Finalize one run as a failure hook would (for a process whose hook could not run)."""
    coordinator = attach_coordinator(get_backend(db_url), run_id, logger=logger)
    coordinator.finalize_on_error(message)
    logger.warning("run %s finalized: %s", run_id, message)


def finalize_failed_run(flow: Any, flow_run: Any, state: Any) -> None:
    """on_failure / on_crashed: every unfinalized goal becomes an error, the run FAILED."""
    _finalize(flow_run, state, StatusEnum.FAILED)


def finalize_cancelled_run(flow: Any, flow_run: Any, state: Any) -> None:
    """on_cancellation: as a failure, but the run is recorded as CANCELLED."""
    _finalize(flow_run, state, StatusEnum.CANCELLED)


#: What every run-recording flow passes to `@flow`: the hooks that finalize its run when the
#: flow fails, crashes or is cancelled, and no persisted result (the store holds the run).
RUN_FLOW_OPTIONS: dict[str, Any] = {
    "on_failure": [finalize_failed_run],
    "on_crashed": [finalize_failed_run],
    "on_cancellation": [finalize_cancelled_run],
    "persist_result": False,
}
