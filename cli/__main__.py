"""Start-up of the `siegeflow` command: `python -m cli` and the console script (`main`).

The one entry module: it imports the app (`cli.main`), never the other way round (an
import-linter contract in pyproject.toml holds that), so no module is imported twice.
"""

from __future__ import annotations

import os
import sys
import threading


def main() -> None:
    """Run the command line in `sys.argv` in this process and exit with its status."""
    from cli.main import app

    try:
        app()
    except SystemExit as exc:
        _exit(exc.code)
    _exit(0)


def _finish(code: int | str | None) -> int:
    """Run the exit handlers (Prefect's log/event workers, logging, the tracking writer) and
    flush output; the numeric exit status. A string code is an error message: printed, 1."""
    import atexit

    atexit._run_exitfuncs()
    if isinstance(code, str):
        sys.stderr.write(f"{code}\n")
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return int(code or 0)


def _exit(code: int | str | None) -> None:
    """Exit without tearing the interpreter down object by object.

    Finalizing the heap the imports leave (SQLAlchemy, pydantic and rich for a read command;
    thousands of modules, models and clients after a Prefect run) costs 0.2 s of CPU for
    `runs list` and 1-3 s after a flow ran, all after the work is done: exit handlers still run
    (`_finish`: the tracking writer, Prefect's log and event workers, logging, the store's
    engine) and output is flushed, then the process ends without the finalization. A command
    without Prefect that leaves a thread running exits the normal way, which waits for it.
    """
    if "prefect" not in sys.modules and _running_threads():
        raise SystemExit(code)
    os._exit(_finish(code))


def _running_threads() -> bool:
    """Whether a thread the interpreter would wait for at exit (not a daemon) is still alive."""
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())


if __name__ == "__main__":
    main()
