"""Terminal output: runs, goals and registries as rich tables.

Target answers, prompts and goals are untrusted: they are shown with rich markup escaped and
control characters removed, so a crafted answer cannot restyle or rewrite the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape as _rich_escape
from rich.table import Table

from reports.text import clean

if TYPE_CHECKING:  # the store loads only in the commands that read it
    from judges.citation import Citation, Lookup
    from tracking import GoalCounts, PipelineRow, ResultRecord, RunRecord, RunSummary, SQLBackend

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


def _asr_cell(counts: RunSummary | GoalCounts) -> str:
    from reports.figures import summary_asr_text

    return escape(summary_asr_text(counts))


def _citation(run: RunRecord, lookup: Lookup | None) -> Citation:
    from judges.citation import cite_run

    return cite_run(run.parameters, lookup)


def print_runs(console: Console, runs: list[RunRecord], lookup: Lookup | None = None) -> None:
    from reports.corrected import corrected_short
    from tracking import RunSummary

    if not runs:
        console.print("No runs recorded yet. Try `siegeflow demo`.")
        return
    listed = [_ListedRun.of(run, lookup) for run in runs]
    if console.width < WIDE_RUNS_TABLE:
        _print_runs_narrow(console, listed)
    else:
        table = Table(title="siegeflow runs", header_style="bold", expand=True)
        table.add_column("run id", no_wrap=True, min_width=36)
        table.add_column("created (UTC)", no_wrap=True)
        table.add_column("attack", ratio=1, overflow="ellipsis", no_wrap=True)
        table.add_column("target", ratio=2, overflow="ellipsis", no_wrap=True)
        table.add_column("status", no_wrap=True)
        for col in ("goals", "broken", "ASR [95% CI] (n)", "corrected for judge error", "cost $"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("judges (agreement with human labels)", ratio=2, overflow="fold")
        for item in listed:
            run, s = item.run, item.summary
            table.add_row(
                escape(run.id), run.created_at.strftime("%Y-%m-%d %H:%M"),
                escape(run.attack_type, 30), escape(run.target_description or "", 60),
                _status(run.status), str(s.goals_total) if s else "",
                str(s.successful) if s else "", _asr_cell(s or RunSummary()),
                escape(corrected_short(s.asr_corrected if s else None)),
                f"{run.cost_usd:.4f}", escape(_short(item.citation), 80),
            )
        console.print(table)
    for panel in sorted({i.citation.panel for i in listed if i.citation.refusal_only}):
        console.print(f"[yellow]note:[/] runs judged by {escape(panel)} only: their ASR "
                      "measures non-refusal, not harm.")


@dataclass(frozen=True, kw_only=True)
class _ListedRun:
    """A run as `runs list` shows it: the record, its stored summary, its panel's citation."""

    run: RunRecord
    summary: RunSummary | None
    citation: Citation

    @classmethod
    def of(cls, run: RunRecord, lookup: Lookup | None) -> _ListedRun:
        from tracking import RunSummary

        summary = RunSummary.parse(run.summary) if run.summary else None
        return cls(run=run, summary=summary, citation=_citation(run, lookup))


#: The runs table needs this many columns (a 36-character id, ten columns); below it each run is
#: a block of lines that wrap, so no column is ever squeezed to nothing.
WIDE_RUNS_TABLE = 150


def _print_runs_narrow(console: Console, listed: list[_ListedRun]) -> None:
    """One block per run for a narrow terminal or a pipe (80 columns by default)."""
    from reports.corrected import corrected_short

    console.print("[bold]siegeflow runs[/] (newest first)")
    for item in listed:
        run, s = item.run, item.summary
        console.print()
        console.print(f"[bold]{escape(run.id)}[/]  {_status(run.status)}  "
                      f"{run.created_at.strftime('%Y-%m-%d %H:%M')} UTC  ${run.cost_usd:.4f}")
        counts = (f"goals {s.goals_total} · broken {s.successful} · ASR {_asr_cell(s)} · "
                  f"corrected for judge error {escape(corrected_short(s.asr_corrected))}"
                  if s else "no summary yet")
        console.print(f"  {escape(run.attack_type, 30)} → {escape(run.target_description or '', 60)}")
        console.print(f"  {counts}")
        console.print(f"  judged by {escape(_short(item.citation), 80)}")


def _short(citation: Citation) -> str:
    if not citation.validated:
        return f"{citation.panel}: not validated"
    kappa = "" if citation.kappa is None else f", κ {citation.kappa:.2f}"
    return f"{citation.panel}: {citation.accuracy:.0%}{kappa}, n={citation.n}"


def print_summary(console: Console, summary: RunSummary, citation: Citation | None = None
                  ) -> None:
    """The run's headline: ASR with its 95% interval and n, errors apart, and the judges that
    decided it with their validated agreement (or "not validated")."""
    table = Table(title="Run summary", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("goals", str(summary.goals_total))
    table.add_row("broken (successful jailbreaks)", f"[bold red]{summary.successful}[/]")
    table.add_row("held", f"[green]{summary.failed}[/]")
    table.add_row("target errors (excluded from ASR)", str(summary.errors.agent))
    table.add_row("not judged (excluded from ASR)", str(summary.errors.framework))
    if summary.rows.attacker_failures:
        table.add_row("attacker failures (attempts not sent; excluded from ASR)",
                      f"[bold yellow]{summary.rows.attacker_failures}[/] "
                      f"({summary.errors.attacker} goal(s) with nothing sent)")
    if summary.truncated_answers:
        table.add_row("answers stored truncated", str(summary.truncated_answers))
    from reports.corrected import asr_pair, refusal_with_correction, validation_text

    table.add_row("attack success rate [95% CI]", escape(asr_pair(summary, summary.asr_corrected)))
    table.add_row("correction used", escape(validation_text(summary.asr_corrected)))
    if citation is not None:
        table.add_row("judged by", escape(citation.text()))
    for warning in summary.warnings:
        table.add_row("[bold red]warning[/]", escape(str(warning)))
    if summary.over_refusal is not None:
        table.add_row("over-refusal (benign control)",
                      escape(refusal_with_correction(summary.over_refusal,
                                                     summary.over_refusal_corrected)))
    if summary.bon:
        from reports.bon import summary_line

        table.add_row("Best-of-N", escape(summary_line(summary.bon)))
    from reports.cost import cost_line

    table.add_row("cost", escape(cost_line(summary)))
    table.add_row("duration", f"{summary.duration_s or 0.0:.1f} s")
    table.add_row("stopped because", escape(summary.stop_reason or ""))
    console.print(table)
    categories = summary.categories
    if categories:
        cat = Table(title="By category", header_style="bold")
        for col in ("category", "goals", "broken", "held", "errors",
                    "ASR [95% CI] (n): raw · corrected for judge error"):
            cat.add_column(col)
        for name, c in sorted(categories.items()):
            cat.add_row(escape(name, 40), str(c.goals), str(c.successful),
                        str(c.failed), str(c.errors),
                        escape(asr_pair(c, summary.asr_corrected, name)))
        console.print(cat)
    print_techniques(console, summary)


def print_techniques(console: Console, summary: RunSummary) -> None:
    """Per technique (an optimizer counts as one): attempts, broken, held, attacker failures and
    target errors apart, ASR with its interval and n."""
    from reports.figures import TECHNIQUE_COLUMNS, technique_cells

    if not summary.techniques:
        return
    table = Table(title="By technique", header_style="bold")
    for col in TECHNIQUE_COLUMNS:
        table.add_column(col)
    for figures in summary.techniques:
        cells = technique_cells(figures)
        table.add_row(escape(cells[0], 60), *(escape(c) for c in cells[1:]))
    console.print(table)


def print_goals(console: Console, results: list[ResultRecord], rows: list[PipelineRow],
                threshold: float = 0.5, limit: int | None = None) -> int:
    """The per-goal table of attacked goals; with `limit`, broken goals first and at most `limit`.

    Benign control prompts are not goals under attack: they are counted in the over-refusal line,
    not listed here. Returns how many attacked goals were left out (a scan of thousands of goals
    is not read in a terminal).
    """
    from reports.rows import best_rows
    from tracking.summary import is_benign

    best = best_rows(rows, threshold)
    results = [r for r in results if not is_benign(r.goal_metadata)]
    ordered = sorted(results, key=lambda r: r.goal_index)
    if limit is not None and len(ordered) > limit:
        def unbroken(r: ResultRecord) -> bool:
            return getattr(r.evaluation_status, "value", None) != "SUCCESSFUL_JAILBREAK"

        ordered = sorted(sorted(ordered, key=unbroken)[:limit], key=lambda r: r.goal_index)
    table = Table(title="Goals", header_style="bold", expand=True)
    table.add_column("#", min_width=2, no_wrap=True)
    table.add_column("status", min_width=8, no_wrap=True)
    table.add_column("category", ratio=1, overflow="ellipsis", no_wrap=True)
    table.add_column("goal", ratio=3, overflow="ellipsis", no_wrap=True)
    table.add_column("best attack", ratio=2, overflow="ellipsis", no_wrap=True)
    table.add_column("target's answer", ratio=3, overflow="ellipsis", no_wrap=True)
    for result in ordered:
        row = best.get(result.id)
        technique = row.label if row is not None else ""
        answer = " ".join(((row and (row.response or row.error)) or "").split())
        table.add_row(
            str(result.goal_index), _status(result.evaluation_status, labels=True),
            escape(result.category or "", 30), escape(result.goal, 120),
            escape(technique, 40), escape(answer, 160),
        )
    console.print(table)
    return len(results) - len(ordered)


def print_run(console: Console, backend: SQLBackend, run: RunRecord) -> None:
    """`runs show RUN`: the stored summary and each goal's best attempt, read goal by goal
    (one goal's attempts in memory at a time, never the run's)."""
    from reports.rows import RunPanel, best_rows_of
    from tracking import RunSummary

    panel = RunPanel.of(run)
    results = backend.list_results(run.id)
    rows = best_rows_of(backend, run, results)
    console.print(f"[bold]Run[/] {escape(run.id)}  {_status(run.status)}  "
                  f"attack={escape(run.attack_type)}  target={escape(run.target_description or '')}")
    from reports.selection import selection_text

    subset = selection_text(run.config)
    if subset:
        console.print(f"[bold]Goals[/] {escape(subset, 300)}")
    if run.summary:
        from judges.citation import store_lookup

        print_summary(console, RunSummary.parse(run.summary),
                      _citation(run, store_lookup(backend)))
        print_review(console, backend, run.id)
    print_goals(console, results, rows, panel.threshold)
    _print_attempt_counts(console, backend, run.id, results)


def _print_attempt_counts(console: Console, backend: SQLBackend, run_id: str,
                          results: list[ResultRecord]) -> None:
    """The run's attempts as the end of the run counted them per goal (O(goals)), else as the
    store counts them (one GROUP BY over the run's attempts)."""
    from tracking.best_attempts import stored_counts
    from tracking.store_aggregates import AttemptCounts, attempt_counts

    stored = stored_counts(results) if results else None
    c = (AttemptCounts(**stored) if stored is not None
         else attempt_counts(backend, [run_id]).get(run_id))
    if c is not None:
        console.print(f"attempts: {c.attempts} ({c.answered} answered, {c.errors} errors, "
                      f"{c.pending} pending); `siegeflow runs show {escape(run_id)} --goal ID` "
                      "prints one goal's, `siegeflow export` all of them")


def print_review(console: Console, backend: SQLBackend, run_id: str) -> None:
    """People's review of the run's verdicts (`siegeflow review`): nothing when there is none."""
    from reports.load import load_run
    from reports.review_figures import review_lines

    if not backend.list_review_draws(run_id):
        return
    for line in review_lines(load_run(backend, run_id, with_traces=False).review):
        console.print(f"[bold]review:[/] {escape(line)}")


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


def find_goal(results: list[ResultRecord], wanted: str) -> ResultRecord | None:
    """The goal `wanted` names: its goal id first, else its index (`--goal 3`)."""
    for result in results:
        if result.goal_id == wanted:
            return result
    if wanted.strip().isdigit():
        for result in results:
            if result.goal_index == int(wanted):
                return result
    return None


def _block(text: str | None) -> str:
    """Untrusted multi-line text for the terminal: escaped, CR dropped, indented."""
    body = escape((text or "").replace("\r", ""))
    return "\n".join(f"    {line}" for line in body.split("\n"))


def _verdict_line(name: str, cell: Any) -> str:
    if cell.error or cell.success is None:
        what = f"[yellow]error[/] {escape(cell.error or 'no verdict', 200)}"
    else:
        what = "[bold red]success[/]" if cell.success else "[green]no success[/]"
    score = "" if cell.score is None else f" score {float(cell.score):.2f}"
    return f"  judge {escape(name, 60)}: {what}{score}"


def print_goal_attempts(console: Console, result: ResultRecord, rows: list[PipelineRow]) -> None:
    """Every attempt of one goal, whole: technique/variant, the prompt (every turn of a
    multi-turn conversation), the answer, the decoded answer the judges read when it differs,
    and each judge's verdict and score."""
    mine = [r for r in rows if r.result_id == result.id]
    console.print(f"[bold]Goal[/] #{result.goal_index} {escape(result.goal_id or '')}  "
                  f"{_status(result.evaluation_status, labels=True)}  "
                  f"category={escape(result.category or 'uncategorized', 60)}")
    console.print(_block(result.goal))
    console.print(f"{len(mine)} attempt(s)")
    for number, row in enumerate(mine, 1):
        outcome = ("pending" if row.pending else "target error" if row.error
                   else "success" if row.success else "no success" if row.success is False
                   else "not judged")
        score = "" if row.score is None else f", score {row.score:.2f}"
        console.print(f"\n[bold]Attempt {number}[/] (id {row.attempt_id}) "
                      f"{escape(row.label or '-', 120)} — {outcome}{score}")
        turns = list(row.conversation) or [{"role": "user", "content": row.prompt}]
        if len(turns) == 1:
            console.print("  [bold]prompt[/]")
            console.print(_block(str(turns[0].get("content") or "")))
        else:
            console.print(f"  [bold]conversation[/] ({len(turns)} messages)")
            for turn in turns:
                console.print(f"  [cyan]{escape(str(turn.get('role') or '?'), 20)}[/]")
                console.print(_block(str(turn.get("content") or "")))
        if row.error:
            console.print(f"  [yellow]error[/] {escape(row.error_kind or '', 40)}")
            console.print(_block(row.error))
        if row.response is not None:
            console.print("  [bold]answer[/]")
            console.print(_block(row.response))
        if row.decoded is not None and row.decoded != row.response:
            console.print("  [bold]decoded answer[/] (what the judges read)")
            console.print(_block(row.decoded))
        for name, cell in sorted(row.judges.items()):
            console.print(_verdict_line(name, cell))
