"""Commands that read the store: `runs stale|list|show` and `export` (no prefect, no litellm)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli import output
from cli.app import DbOption, app, bad_input, console, db_url, runs_app


@runs_app.command("stale")
def runs_stale(
    db: DbOption = None,
    older_than: Annotated[
        float, typer.Option(help="Seconds since the last heartbeat (runs beat every 15 s).")
    ] = 60.0,
) -> None:
    """Runs left PENDING/RUNNING by a process that died (SIGKILL, lost machine).

    `siegeflow resume RUN_ID` finishes one, keeping every recorded completion and judgment;
    a deployment run with `resume_stale=true` adopts one of the same scan by itself.
    """
    from rich.table import Table

    from tracking import get_backend

    runs = get_backend(db_url(db)).find_stale_runs(older_than)
    if not runs:
        console.print(f"No stale runs (no open run silent for {older_than:g} s).")
        return
    table = Table(title="stale runs", header_style="bold")
    for col in ("run id", "status", "attack", "target", "last heartbeat (UTC)"):
        table.add_column(col, no_wrap=col in ("run id", "status"))
    for r in runs:
        beat = r.heartbeat_at or r.started_at or r.created_at
        table.add_row(output.escape(r.id), r.status.value, output.escape(r.attack_type, 30),
                      output.escape(r.target_description or "", 60),
                      beat.strftime("%Y-%m-%d %H:%M:%S"))
    console.print(table)
    console.print("Finish one with: siegeflow resume RUN_ID")


@runs_app.command("list")
def runs_list(
    db: DbOption = None,
    limit: Annotated[int, typer.Option(help="Most recent N runs.")] = 20,
) -> None:
    """Recorded runs, newest first."""
    from judges.citation import store_lookup
    from tracking import get_backend

    backend = get_backend(db_url(db))
    output.print_runs(console, backend.list_runs(limit=limit), store_lookup(backend))


@runs_app.command("show")
def runs_show(
    run_id: str,
    db: DbOption = None,
    goal: Annotated[str | None, typer.Option(
        "--goal", help="A goal id or index: print every attempt of that goal, whole "
        "(prompt or conversation, answer, decoded answer, each judge's verdict).")] = None,
) -> None:
    """One run: its summary and a per-goal table (or, with --goal, one goal's attempts)."""
    from tracking import get_backend

    backend = get_backend(db_url(db))
    run_row = backend.get_run(run_id)
    if run_row is None:
        raise bad_input(f"no run {run_id!r} in {db_url(db)}")
    if goal is None:
        output.print_run(console, backend, run_row)
        return
    from reports.rows import RunPanel, goal_groups

    results = backend.list_results(run_id)
    found = output.find_goal(results, goal)
    if found is None:
        raise bad_input(f"run {run_id!r} has no goal with id or index {goal!r}")
    panel = RunPanel.of(run_row)  # that goal's attempts only, read a page at a time
    for _, rows in goal_groups(backend, run_id, [found], panel.judge_keys, panel.rule):
        output.print_goal_attempts(console, found, rows)


@app.command()
def export(
    run_id: str,
    format: Annotated[str, typer.Option("--format", "-f", help="jsonl | csv")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--output", "-o", help="File (default: stdout).")] = None,
    db: DbOption = None,
) -> None:
    """Every attempt of a run (goal, prompt, response, verdicts) as JSONL or CSV."""
    from reports.export import export_run

    if format not in ("jsonl", "csv"):
        raise bad_input(f"--format must be jsonl or csv, not {format!r}")
    from tracking import get_backend

    backend = get_backend(db_url(db))
    if backend.get_run(run_id) is None:
        raise bad_input(f"no run {run_id!r} in {db_url(db)}")
    stream = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        export_run(backend, run_id, format, stream)
    finally:
        if out:
            stream.close()
