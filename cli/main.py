"""The `siegeflow` command.

Fast paths (`--help`, `runs list`, `runs show`, `attacks`, `judges`, `export`) never import
prefect or litellm (3 s and 7-12 s on a small machine); commands that run flows import them
inside the command. Exit codes (`cli.exits`): 0 ok, 1 run failed, 2 bad input, 3 ASR above
`--fail-over`, 4 the run tested too little (every goal a target error, or more than
`--max-error-rate`). The commands live in `cli/commands/`, one module per group.
"""

from __future__ import annotations

import os
import sys

from cli.app import app, err
from cli.server import server_app, ui

app.command()(ui)  # first in `--help`, as before the split

# Imported in `--help` order; each import registers its group's commands.
from cli.commands import runs  # noqa: E402, F401, I001
from cli.commands import store  # noqa: E402, F401
from cli.commands import reporting  # noqa: E402, F401
from cli.commands import plugins  # noqa: E402, F401
from cli.exits import (  # noqa: E402
    EXIT_ASR_OVER,
    EXIT_BAD_INPUT,
    EXIT_ERRORS,
    EXIT_OK,
    EXIT_RUN_FAILED,
)
from cli.commands.goals import goals_app  # noqa: E402
from cli.commands.judges import judges_app  # noqa: E402

app.add_typer(goals_app, name="goals")
app.add_typer(judges_app, name="judges")
app.add_typer(server_app, name="server")

__all__ = [
    "EXIT_ASR_OVER", "EXIT_BAD_INPUT", "EXIT_ERRORS", "EXIT_OK", "EXIT_RUN_FAILED", "app", "main",
]


def main() -> None:
    """The `siegeflow` command, run in this process."""
    _exit(run_app())


def run_app() -> int | str | None:
    """Run the command line in `sys.argv`; its exit code (typer exits by `SystemExit`)."""
    try:
        app()
    except SystemExit as exc:
        return exc.code
    return 0


def finish(code: int | str | None) -> int:
    """Run the exit handlers (Prefect's log/event workers, logging, the tracking writer) and
    flush output; the numeric exit status. A string code is an error message: printed, 1."""
    import atexit

    atexit._run_exitfuncs()
    if isinstance(code, str):
        err.print(code)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return int(code or 0)


def _exit(code: int | str | None) -> None:
    """Exit; after a flow ran, without tearing the interpreter down object by object.

    Finalizing the heap a Prefect run leaves (thousands of modules, pydantic models, clients)
    takes 1-3 s after the work is done: exit handlers still run (`finish`), then the process
    ends without the finalization.
    """
    if "prefect" not in sys.modules:
        raise SystemExit(code)
    os._exit(finish(code))


if __name__ == "__main__":
    from cli.entry import main as entry

    entry()
