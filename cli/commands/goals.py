"""`siegeflow goals`: the goal sets a run can name — shipped builtin sets and benchmark presets,
with their counts and categories read from the files on this machine (never downloaded here,
except by `goals fetch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli import output
from cli.app import bad_input, console

goals_app = typer.Typer(
    help="Goal sets: builtin sets and public benchmark presets (`--goals NAME`).",
    invoke_without_command=True,
)

PathOption = Annotated[
    Path | None,
    typer.Option("--goals-path", help="Folder holding the published files (else the cache)."),
]


@goals_app.callback()
def goals_list(ctx: typer.Context, goals_path: PathOption = None) -> None:
    """List builtin sets and presets with their goal counts and categories."""
    if ctx.invoked_subcommand is not None:
        return
    from goals import list_builtin_sets, list_presets, load_builtin, preset_status
    from goals.fetch import cache_dir

    table = Table(title="goal sets (--goals NAME)", header_style="bold")
    for col in ("name", "kind", "goals", "cats", "description"):
        table.add_column(col, no_wrap=col != "description", min_width=24 if col == "description"
                         else None)
    for builtin in list_builtin_sets():
        goals = load_builtin(builtin.name)
        n_categories = len({g.category for g in goals})
        table.add_row(builtin.ref, "harmful", str(len(goals)), str(n_categories),
                      output.escape(f"{builtin.description} (shipped)"))
    for preset in list_presets():
        status = preset_status(preset, goals_path)
        if status.error:
            count, cats = "[red]unreadable[/]", ""
        elif status.goals is None:
            count, cats = "[dim]not downloaded[/]", ""
        else:
            count, cats = str(status.goals), str(len(status.categories))
        table.add_row(preset.name, preset.kind, count, cats, output.escape(preset.description))
    console.print(table)
    console.print(f"Presets are read from --goals-path, else the cache ({cache_dir()}), else "
                  "downloaded on first use and checked against a pinned sha256. "
                  "`siegeflow goals show NAME` for categories and sources.")


@goals_app.command("show")
def goals_show(name: str, goals_path: PathOption = None) -> None:
    """One preset: its source, licence, checksum, file on this machine and its categories."""
    from goals import GoalFileError, get_preset, preset_status
    from goals.fetch import cached_path

    try:
        preset = get_preset(name)
    except GoalFileError as exc:
        raise bad_input(str(exc)) from None
    status = preset_status(preset, goals_path)
    f = preset.file
    lines = [
        f"[bold]{output.escape(preset.name)}[/] — {output.escape(preset.description)}",
        f"kind: {preset.kind}; goals in the published file: {preset.count}",
        f"source: {output.escape(f.url)}",
        f"citation: {output.escape(f.citation)}; licence: {output.escape(f.license)}",
        f"sha256: {f.sha256 or 'not pinned (used as downloaded)'}",
        f"file: {output.escape(str(status.path)) if status.path else 'not downloaded'} "
        f"(cache location: {output.escape(str(cached_path(f)))})",
        *(f"note: {output.escape(note)}" for note in preset.notes),
    ]
    console.print("\n".join(lines))
    if status.error:
        raise bad_input(status.error)
    if status.categories:
        table = Table(header_style="bold")
        table.add_column("category")
        table.add_column("goals", justify="right")
        for category, n in status.categories.items():
            table.add_row(output.escape(category), str(n))
        console.print(table)


@goals_app.command("fetch")
def goals_fetch(names: list[str], goals_path: PathOption = None) -> None:
    """Download presets' files into the cache now (checked against their sha256)."""
    from goals import GoalFileError, load_preset

    for name in names:
        try:
            goals = load_preset(name, search=goals_path, download=True)
        except GoalFileError as exc:
            raise bad_input(str(exc)) from None
        console.print(f"{output.escape(name)}: {len(goals)} goals")
