"""Terminal output: runs, goals and registries as rich tables.

Target answers, prompts and goals are untrusted: they are shown with rich markup escaped and
control characters removed, so a crafted answer cannot restyle or rewrite the terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape as _rich_escape
from rich.table import Table

from reports.text import clean

if TYPE_CHECKING:  # the store loads only in the commands that read it
    from tracking import PipelineRow

STATUS_STYLE = {
    "SUCCESSFUL_JAILBREAK": "bold red",
    "FAILED_JAILBREAK": "green",
    "ERROR_AGENT_RESPONSE": "yellow",
    "ERROR_TEST_FRAMEWORK": "yellow",
    "NOT_EVALUATED": "dim",
    "COMPLETED": "green",
    "FAILED": "red",
    "RUNNING": "cyan",
    "CANCELLED": "yellow",
    "PENDING": "dim",
}
STATUS_LABEL = {
    "SUCCESSFUL_JAILBREAK": "BROKEN",
    "FAILED_JAILBREAK": "held",
    "ERROR_AGENT_RESPONSE": "target error",
    "ERROR_TEST_FRAMEWORK": "not judged",
    "NOT_EVALUATED": "pending",
}


def escape(text: Any, limit: int | None = None) -> str:
    return _rich_escape(clean(str(text), limit))


def _status(value: Any, labels: bool = False) -> str:
    name = getattr(value, "value", str(value))
    label = STATUS_LABEL.get(name, name) if labels else name
    return f"[{STATUS_STYLE.get(name, '')}]{escape(label)}[/]"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def print_runs(console: Console, runs: list[Any]) -> None:
    if not runs:
        console.print("No runs recorded yet. Try `siegeflow demo`.")
        return
    table = Table(title="siegeflow runs", header_style="bold", expand=True)
    table.add_column("run id", no_wrap=True, min_width=36)
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("attack", ratio=1, overflow="ellipsis", no_wrap=True)
    table.add_column("target", ratio=2, overflow="ellipsis", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for col in ("goals", "broken", "ASR", "cost $"):
        table.add_column(col, justify="right", no_wrap=True)
    for run in runs:
        s = run.summary or {}
        table.add_row(
            escape(run.id), run.created_at.strftime("%Y-%m-%d %H:%M"), escape(run.attack_type, 30),
            escape(run.target_description or "", 60), _status(run.status),
            str(s.get("goals_total", "")), str(s.get("successful", "")), pct(s.get("asr")),
            f"{run.cost_usd:.4f}",
        )
    console.print(table)


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title="Run summary", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    errors = summary.get("errors") or {}
    table.add_row("goals", str(summary.get("goals_total", 0)))
    table.add_row("broken (successful jailbreaks)", f"[bold red]{summary.get('successful', 0)}[/]")
    table.add_row("held", f"[green]{summary.get('failed', 0)}[/]")
    table.add_row("target errors (excluded from ASR)", str(errors.get("agent", 0)))
    table.add_row("not judged (excluded from ASR)", str(errors.get("framework", 0)))
    if summary.get("truncated_answers"):
        table.add_row("answers stored truncated", str(summary["truncated_answers"]))
    table.add_row("attack success rate", pct(summary.get("asr")))
    table.add_row("cost", f"${float(summary.get('cost_usd') or 0):.4f}")
    table.add_row("duration", f"{float(summary.get('duration_s') or 0):.1f} s")
    table.add_row("stopped because", escape(summary.get("stop_reason", "")))
    console.print(table)
    categories = summary.get("categories") or {}
    if categories:
        cat = Table(title="By category", header_style="bold")
        for col in ("category", "goals", "broken", "held", "errors", "ASR"):
            cat.add_column(col)
        for name, c in sorted(categories.items()):
            cat.add_row(escape(name, 40), str(c.get("goals", 0)), str(c.get("successful", 0)),
                        str(c.get("failed", 0)), str(c.get("errors", 0)), pct(c.get("asr")))
        console.print(cat)


def print_goals(console: Console, results: list[Any], rows: list[PipelineRow],
                threshold: float = 0.5) -> None:
    from reports.rows import best_rows

    best = best_rows(rows, threshold)
    table = Table(title="Goals", header_style="bold", expand=True)
    table.add_column("#", min_width=2, no_wrap=True)
    table.add_column("status", min_width=8, no_wrap=True)
    table.add_column("category", ratio=1, overflow="ellipsis", no_wrap=True)
    table.add_column("goal", ratio=3, overflow="ellipsis", no_wrap=True)
    table.add_column("best attack", ratio=2, overflow="ellipsis", no_wrap=True)
    table.add_column("target's answer", ratio=3, overflow="ellipsis", no_wrap=True)
    for result in sorted(results, key=lambda r: r.goal_index):
        row = best.get(result.id, {})
        technique = "/".join(x for x in (row.get("technique"), row.get("variant")) if x)
        answer = " ".join((row.get("response") or row.get("error") or "").split())
        table.add_row(
            str(result.goal_index), _status(result.evaluation_status, labels=True),
            escape(result.category or "", 30), escape(result.goal, 120),
            escape(technique, 40), escape(answer, 160),
        )
    console.print(table)


def print_run(console: Console, backend: Any, run: Any) -> None:
    from reports.rows import run_rows

    panel, rows = run_rows(backend, run)
    console.print(f"[bold]Run[/] {escape(run.id)}  {_status(run.status)}  "
                  f"attack={escape(run.attack_type)}  target={escape(run.target_description or '')}")
    if run.summary:
        print_summary(console, run.summary)
    print_goals(console, backend.list_results(run.id), rows, panel.threshold)


def print_registry(console: Console, title: str, infos: list[Any]) -> None:
    table = Table(title=title, header_style="bold", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("model?")
    table.add_column("description")
    table.add_column("options")
    for info in infos:
        options = "\n".join(
            f"{escape(name)}: {escape(o.get('type', ''))} = {escape(o.get('default', ''), 60)}"
            for name, o in info.options.items()
        )
        needs_model = getattr(info, "needs_model", None) or getattr(info, "needs_attacker", False)
        table.add_row(escape(info.name), "yes" if needs_model else "no",
                      escape(info.description), options or "-")
    console.print(table)
