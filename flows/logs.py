"""siegeflow's own log records in the Prefect run logs (the UI's Logs tab, `read_logs`).

Why: siegeflow logs through `logging.getLogger("siegeflow.*")`, which Prefect does not send to
its API (only its run loggers and `PREFECT_LOGGING_EXTRA_LOGGERS` are), so an attacker that
failed, a Redis outage or a crashed shard showed on a terminal or a worker's stderr and never
next to the run. Every flow calls `send_logs_to_runs()` as it starts: from then on a record of
the `siegeflow` logger made inside a flow or task run also goes to that run's logs (the
records' level is the logger's as configured, WARNING by default; the console is unchanged).
Records made outside a run (the CLI before a flow starts, a writer thread) stay local, and a
message is passed through the store's redaction (`tracking.redact_text`) before it leaves the
process: a key or a password in a URL never reaches the Prefect server.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

from tracking import redact_text

#: The logger every siegeflow module logs under (`siegeflow.<package>.<module>`).
LOGGER = "siegeflow"


class RunLogHandler(APILogHandler):
    """Prefect's API log handler for siegeflow's loggers: records made in a run only, redacted."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "flow_run_id", None) is None and not _in_run():
            return  # not a run's record: Prefect would warn, and nothing could show it
        super().emit(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _in_run() -> bool:
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def send_logs_to_runs() -> None:
    """Attach `RunLogHandler` to the `siegeflow` logger of this process (once).

    Not when Prefect's own handler is already there (`PREFECT_LOGGING_EXTRA_LOGGERS=siegeflow`
    set by the user): each record reaches the run's logs once.
    """
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(handler, APILogHandler) for handler in logger.handlers):
        logger.addHandler(RunLogHandler())
