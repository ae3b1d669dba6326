"""Commands that list what is registered: `attacks`, `optimizers` (`judges` is a group:
`cli/commands/judges.py`)."""

from __future__ import annotations

from cli import output
from cli.app import app, console


@app.command()
def attacks() -> None:
    """Registered attack techniques and their options."""
    from attacks import list_techniques

    output.print_registry(console, "Attack techniques", list_techniques())


@app.command()
def optimizers() -> None:
    """Registered iterative attackers (`run --optimizer NAME`) and their options."""
    from optimizers.registry import list_optimizers

    output.print_registry(console, "Optimizers", list_optimizers())
