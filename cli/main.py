"""The `siegeflow` Typer app with every command group registered (start-up: `cli.__main__`).

Fast paths (`--help`, `runs list`, `runs show`, `attacks`, `judges`, `export`) never import
prefect or litellm (3 s and 7-12 s on a small machine); commands that run flows import them
inside the command. `runs list` and `runs show` also skip Alembic (a store at head), the judges
and targets (test_runs_list_and_show_import_only_what_they_read holds the list).

Exit codes (`cli.exits`): 0 ok, 1 run failed, 2 bad input, 3 ASR above `--fail-over`, 4 the
run tested too little (every goal a target error, or more than `--max-error-rate`). The
commands live in `cli/commands/`, one module per group.
"""

from __future__ import annotations

from cli.app import app
from cli.server import server_app, ui

app.command()(ui)  # first in `--help`, as before the split

# Imported in `--help` order; each import registers its group's commands.
from cli.commands import runs  # noqa: E402, F401, I001
from cli.commands import store  # noqa: E402, F401
from cli.commands import reporting  # noqa: E402, F401
from cli.commands import plugins  # noqa: E402, F401
from cli.commands import review  # noqa: E402, F401
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

__all__ = ["EXIT_ASR_OVER", "EXIT_BAD_INPUT", "EXIT_ERRORS", "EXIT_OK", "EXIT_RUN_FAILED", "app"]
