"""`siegeflow server start|stop|status` and `siegeflow ui`: the local Prefect server's lifecycle.

Every flow-running command starts the server on first use and leaves it running for the next
one (flows/server.py); these commands make that visible and controllable. A server named by
Prefect's settings (`PREFECT_API_URL` in the environment or the active profile) always wins.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cli.output import escape

server_app = typer.Typer(
    help="The local Prefect server that siegeflow starts once and every command reuses.",
    no_args_is_help=True,
)
console = Console()


def _configured_note() -> str | None:
    from flows.server import configured_api_url

    url = configured_api_url()
    if url is None:
        return None
    return (f"Prefect's settings name a server ({escape(url)}): siegeflow commands use it, "
            "not the local one.")


@server_app.command("start")
def start(
    port: Annotated[int | None, typer.Option(help="Port when one must be started "
                                                     "(default: the last one, else any free).")] = None,
) -> None:
    """Start the local server in the background (or report the running one)."""
    from flows.server import PrefectServerError, default_home, ensure_server

    try:
        with console.status("Starting the local Prefect server (a first start migrates its DB)…"):
            record = ensure_server(default_home(), port=port or 0)
    except PrefectServerError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    console.print(f"Prefect server running: pid {record.pid}, UI {record.ui_url}")
    if note := _configured_note():
        console.print(note)


@server_app.command("stop")
def stop() -> None:
    """Stop the local server (runs and their history stay recorded)."""
    from flows.server import default_home, stop_server

    record = stop_server(default_home())
    if record is None:
        console.print("No local Prefect server was running.")
    else:
        console.print(f"Stopped the local Prefect server (pid {record.pid}, port {record.port}).")


@server_app.command("status")
def status() -> None:
    """Whether the local server runs (exit 0) or not (exit 1), and which API commands use."""
    from flows.server import default_home, read_record, server_status

    home = default_home()
    record = server_status(home)
    if record is not None:
        console.print(f"Local Prefect server: running, pid {record.pid}, API {record.api_url}, "
                      f"UI {record.ui_url}")
        console.print(f"Home: {escape(str(home))}   log: {escape(str(record.log_path))}")
    elif (stale := read_record(home)) is not None:
        console.print(f"Local Prefect server: not running (stale record: pid {stale.pid}, port "
                      f"{stale.port}); the next command starts a new one.")
    else:
        console.print("Local Prefect server: not running; the next command starts one.")
    if note := _configured_note():
        console.print(note)
    raise typer.Exit(0 if record is not None else 1)


def ui(
    port: Annotated[int | None, typer.Option(help="Port when the server must be started.")] = None,
) -> None:
    """Print the Prefect UI's address: every run `run`/`demo`/`resume` made is there.

    Uses the server Prefect's settings name, else the local server (started if needed).
    """
    from prefect.settings import get_current_settings

    from flows.server import PrefectServerError, configured_api_url, default_home, ensure_server

    url = configured_api_url()
    ui_url = str(get_current_settings().ui_url or "") if url else ""
    if url is None:
        try:
            with console.status("Starting the local Prefect server…"):
                record = ensure_server(default_home(), port=port or 0)
            url, ui_url = record.api_url, record.ui_url
        except PrefectServerError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(1) from None
        console.print("The server keeps running in the background: `siegeflow server stop` ends it.")
    console.print(f"Prefect UI: {escape(ui_url or url)}")
    console.print(f"Other tools reach it with: export PREFECT_API_URL={escape(url)}")
