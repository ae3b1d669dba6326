"""The `siegeflow` Typer app and what its command groups share: consoles, the `--db` option,
the bad-input exit. Importing it stays cheap (no prefect, no litellm): see `cli.main`."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console

from cli import output
from cli.exits import EXIT_BAD_INPUT

for _key, _value in {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "LITELLM_LOG": "ERROR",
}.items():
    os.environ.setdefault(_key, _value)

app = typer.Typer(
    name="siegeflow",
    help="Red-team LLMs and AI agents: attack, judge, record, report — orchestrated by Prefect.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Inspect recorded runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
console = Console()
err = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Tracking store URL (default: SQLite file in the user data dir)."),
]


def db_url(url: str | None) -> str:
    """The store URL (flag, else $SIEGEFLOW_DB_URL, else the SQLite file), checked and opened
    (connected, schema migrated) before anything else happens: a malformed URL, a missing
    database, a closed port or refused credentials exit 2 with one line, and no Prefect flow
    run is ever created for it."""
    from tracking import (
        DB_URL_ENV,
        StoreUnavailableError,
        StoreUrlError,
        check_store,
        check_store_url,
        default_db_url,
    )

    where = "--db" if url else "$" + DB_URL_ENV
    try:
        checked = check_store_url(url or default_db_url())
        check_store(checked)
    except (StoreUrlError, StoreUnavailableError) as exc:
        raise bad_input(f"{where}: {exc}") from None
    return checked


def safe_db(db: str | None) -> str:
    """The store URL as it may be printed (credentials redacted)."""
    from tracking import redact_text

    return redact_text(db_url(db))


def bad_input(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {output.escape(message)}")
    return typer.Exit(EXIT_BAD_INPUT)
