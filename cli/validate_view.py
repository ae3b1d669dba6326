"""Terminal view of a judge validation: one row per judge and the panel, then the worst
disagreements (goals and answers are untrusted text: escaped)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from cli.output import escape


def print_validation(console: Console, result: Any, show: int = 10) -> None:
    from judges.validation import PANEL

    table = Table(title=f"Agreement with human labels — {escape(result.source, 120)}",
                  header_style="bold")
    table.add_column("", style="bold", no_wrap=True)
    names = [*result.judges, PANEL] if len(result.judges) > 1 else result.judges
    for name in names:
        label = f"panel ({result.rule})" if name == PANEL else name
        table.add_column(escape(label, 40), justify="right", no_wrap=True)
    figures = [result.figures[name] for name in names]
    rows = [
        ("n (decided)", [str(f.n) for f in figures]),
        ("judge errors", [str(f.errors) for f in figures]),
        ("accuracy", [f.accuracy.text() for f in figures]),
        ("precision", [f.precision.text() for f in figures]),
        ("recall", [f.recall.text() for f in figures]),
        ("F1", [f.f1.text(percent=False) for f in figures]),
        ("Cohen's kappa", [f.kappa.text(percent=False) for f in figures]),
        ("TP / FP / FN / TN", [f"{f.confusion.tp} / {f.confusion.fp} / {f.confusion.fn} / "
                               f"{f.confusion.tn}" for f in figures]),
    ]
    for what, cells in rows:
        table.add_row(what, *cells)
    console.print(table)
    print_datasets(console, result, names)
    console.print(f"95% intervals: {escape(result.intervals)}. Judge errors are counted apart, "
                  "never as verdicts.")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    if result.cost_usd:
        console.print(f"Judge cost: ${result.cost_usd:.4f}")
    worst = result.disagreements(show)
    if not worst:
        return
    dis = Table(title="Worst disagreements (panel vs human label)", header_style="bold",
                expand=True)
    dis.add_column("id", no_wrap=True, overflow="ellipsis", ratio=1)
    dis.add_column("human", no_wrap=True)
    dis.add_column("panel", no_wrap=True)
    dis.add_column("goal", ratio=2, overflow="ellipsis", no_wrap=True)
    dis.add_column("response", ratio=4, overflow="ellipsis", no_wrap=True)
    for r in worst:
        dis.add_row(escape(r.item.id, 60), "yes" if r.item.label else "no",
                    "yes" if r.panel else "no", escape(r.item.goal, 100),
                    escape(" ".join(r.item.response.split()), 200))
    console.print(dis)


def print_datasets(console: Console, result: Any, names: list[str]) -> None:
    """Accuracy and kappa per data set, when the items come from several: a pooled figure can
    hide a set where the judge fails."""
    from judges.validation import PANEL

    datasets = list(dict.fromkeys(r.item.dataset for r in result.results if r.item.dataset))
    if len(datasets) < 2:
        return
    table = Table(title="By data set (accuracy, kappa, n)", header_style="bold")
    table.add_column("data set", no_wrap=True)
    for name in names:
        table.add_column(escape(f"panel ({result.rule})" if name == PANEL else name, 40),
                         justify="right", no_wrap=True)
    for dataset in datasets:
        figures = result.by_dataset(dataset)
        table.add_row(escape(dataset, 40), *(_cell(figures[n]) for n in names))
    console.print(table)


def _cell(figures: dict[str, Any]) -> str:
    if not figures["n"]:
        return "n/a"
    kappa = "n/a" if figures["kappa"] is None else f"{figures['kappa']:.2f}"
    return f"{figures['accuracy']:.1%}, κ {kappa}, {figures['n']}"
