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

import contextlib
import logging
import os
from typing import Any

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
    """Attach `RunLogHandler` to the `siegeflow` logger of this process (once), and keep a
    deployment run alive when its console goes away (`survive_lost_console`).

    Not when Prefect's own handler is already there (`PREFECT_LOGGING_EXTRA_LOGGERS=siegeflow`
    set by the user): each record reaches the run's logs once.
    """
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(handler, APILogHandler) for handler in logger.handlers):
        logger.addHandler(RunLogHandler())
    survive_lost_console()


def _console_gone(console: Any) -> None:
    """In place of rich's `Console.on_broken_pipe` (which raises SystemExit(1)): stop printing,
    and point the dead descriptor at /dev/null so later writes to it succeed."""
    console.quiet = True
    with contextlib.suppress(Exception):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, console.file.fileno())
        finally:
            os.close(devnull)


def survive_lost_console() -> None:
    """In a deployment run's process: a console whose reader died no longer ends the run.

    Why (issue 24, reproduced by tests/ops/test_dead_shards.py): Prefect's process worker reads
    its flow-run processes' stdout and stderr through pipes (`stream_output`). SIGKILL the
    worker alone and the flow-run process lives on, but the next record Prefect's console
    handler prints ("Finished in state Completed()" as the Completions step ends) meets a
    broken pipe, and rich, which renders it, answers with `SystemExit(1)`
    (`rich.console.Console.on_broken_pipe`): the run Crashed "Execution was aborted by Python
    system exit call", its answers recorded and none judged. With this, the console falls
    silent instead; the records still reach the run's logs through the API. Only in deployment
    runs: a `siegeflow run | head` keeps rich's behaviour.
    """
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None or ctx.flow_run.deployment_id is None:
        return
    from rich.console import Console

    if Console.on_broken_pipe is not _console_gone:
        Console.on_broken_pipe = _console_gone  # type: ignore[method-assign, assignment]
