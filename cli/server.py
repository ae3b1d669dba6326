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
def stop(
    force: Annotated[bool, typer.Option("--force", help="Stop even while runs are in "
                                        "progress (they end and stay resumable).")] = False,
) -> None:
    """Stop the local server (runs and their history stay recorded).

    Refuses (exit 1) while runs are in progress — flow runs Pending/Running on the server that
    changed state or sent a Prefect heartbeat lately, or runs of the default store with a fresh
    heartbeat — and names them: a run whose server
    vanishes retries the API for minutes, then ends with its goals unjudged.
    """
    from flows.server import default_home, server_status, stop_server

    home = default_home()
    if not force and (record := server_status(home)) is not None:
        busy = _in_progress(record.api_url)
        if busy:
            console.print("[bold red]Not stopping the local Prefect server:[/] runs are in "
                          "progress:")
            for line in busy:
                console.print(f"  {escape(line)}")
            console.print("Wait for them, or `siegeflow server stop --force` (they then end "
                          "and `siegeflow resume RUN_ID` finishes them).")
            raise typer.Exit(1)
    record = stop_server(home)
    if record is None:
        console.print("No local Prefect server was running.")
    else:
        console.print(f"Stopped the local Prefect server (pid {record.pid}, port {record.port}).")


def _in_progress(api_url: str) -> list[str]:
    """What stopping the server would strand, one line each (a check that cannot be made
    is said too: it refuses rather than guesses)."""
    import urllib.error

    from sqlalchemy.exc import SQLAlchemyError

    from flows.recovery import live_runs
    from flows.server import active_flow_runs
    from settings import current_settings
    from tracking import StoreUnavailableError

    lines = []
    fresh_s = current_settings().stale_after_s
    try:
        lines += [f"flow run {name}" for name in active_flow_runs(api_url, fresh_s)]
    except (urllib.error.URLError, OSError, TimeoutError, ValueError, KeyError) as exc:
        lines.append(f"could not list the server's flow runs: {exc}")
    try:
        lines += [f"run {run.id} {run.status.value} (heartbeat within {fresh_s:.0f} s) in "
                  "the default store" for run in live_runs(None, fresh_s)]
    except (SQLAlchemyError, StoreUnavailableError) as exc:
        lines.append(f"could not read the default store: {type(exc).__name__}")
    return lines


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
