"""Commands that render a run: `report` (HTML, JUnit, SARIF) and `compare`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cli import output
from cli.app import DbOption, app, bad_input, console, db_url, err, safe_db
from cli.exits import EXIT_ASR_OVER, EXIT_OK, EXIT_RUN_FAILED

REPORT_FORMATS = ("html", "junit", "sarif")


def _load_for_report(db: str | None, run_id: str, *, traces: bool = True,
                     detail: int | None = None):
    """The run's data for a report, or exit 2 when the run does not exist; `detail`: goals
    kept in detail (the HTML report's cap; JUnit and SARIF list every goal)."""
    from reports.load import RunNotFound, load_run
    from tracking import get_backend

    try:
        return load_run(get_backend(db_url(db)), run_id, with_traces=traces, detail=detail)
    except RunNotFound:
        raise bad_input(f"no run {run_id!r} in {safe_db(db)}") from None


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise bad_input(f"cannot write {out}: {exc.strerror or exc}") from None


@app.command()
def report(
    run_id: str,
    format: Annotated[str, typer.Option("--format", "-f", help="html | junit | sarif")] = "html",
    out: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File (html default: siegeflow-report-RUN.html; "
                                            "junit/sarif default: stdout)."),
    ] = None,
    fail_over: Annotated[
        float | None, typer.Option(help="Exit 3 when the run's ASR exceeds this (0..1).")
    ] = None,
    max_chars: Annotated[
        int | None, typer.Option(help="HTML: characters shown per prompt/answer cell.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Write a run's report: a self-contained HTML file, JUnit XML or SARIF.

    Exit codes: 0 ok, 1 the run failed or was cancelled, 2 bad input, 3 ASR over --fail-over.
    """
    if format not in REPORT_FORMATS:
        raise bad_input(f"--format must be one of {', '.join(REPORT_FORMATS)}, not {format!r}")
    if fail_over is not None and not 0.0 <= fail_over <= 1.0:
        raise bad_input("--fail-over is a rate between 0 and 1")
    from reports.digest import REPORT_GOALS

    data = _load_for_report(db, run_id, traces=format == "html",
                            detail=REPORT_GOALS if format == "html" else None)
    if format == "html":
        from reports.html import render_report

        out = out or Path(f"siegeflow-report-{run_id[:8]}.html")
        _write(render_report(data, max_chars=max_chars), out)
        err.print(f"Report written to {output.escape(str(out))}")
    elif format == "junit":
        from reports.junit import render_junit

        _write(render_junit(data), out)
    else:
        from reports.sarif import render_sarif

        _write(render_sarif(data), out)
    raise typer.Exit(_report_exit(data, fail_over))


def _report_exit(data, fail_over: float | None) -> int:
    from reports.figures import asr_text, headline, pct

    if data.failed:
        err.print(f"[bold red]run {output.escape(data.run_id)} is {data.run.status.value}[/]")
        return EXIT_RUN_FAILED
    asr = headline(data).overall.asr
    if fail_over is not None and asr is not None and asr > fail_over:
        o = headline(data).overall
        from reports.corrected import corrected_text

        err.print(f"[bold red]ASR raw {output.escape(asr_text(o.broken, o.judged))} exceeds "
                  f"--fail-over {pct(fail_over)}[/] (the gate reads the raw ASR; "
                  f"{output.escape(corrected_text(data.summary.asr_corrected))})")
        return EXIT_ASR_OVER
    return EXIT_OK


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="The baseline run (before the change).")],
    run_b: Annotated[str, typer.Argument(help="The run after the change.")],
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the HTML view here.")
    ] = None,
    fail_on_regression: Annotated[
        bool, typer.Option(help="Exit 3 when any goal became broken in RUN_B.")
    ] = False,
    db: DbOption = None,
    db_b: Annotated[
        str | None, typer.Option("--db-b", help="Store of RUN_B when it is not --db's.")
    ] = None,
) -> None:
    """Which goals became broken or were fixed between two runs of the same target.

    Exit codes: 0 ok, 1 either run failed, 2 bad input, 3 regressions with --fail-on-regression.
    """
    from reports.compare import compare_runs, print_comparison

    a = _load_for_report(db, run_a, traces=False)
    b = _load_for_report(db_b or db, run_b, traces=False)
    cmp = compare_runs(a, b)
    print_comparison(console, cmp)
    if out is not None:
        from reports.compare_html import render_compare

        _write(render_compare(cmp), out)
        err.print(f"Comparison written to {output.escape(str(out))}")
    if a.failed or b.failed:
        err.print("[bold red]one of the runs failed: the comparison may be incomplete[/]")
        raise typer.Exit(EXIT_RUN_FAILED)
    if fail_on_regression and cmp.regressions:
        err.print(f"[bold red]{len(cmp.regressions)} goal(s) became broken[/]")
        raise typer.Exit(EXIT_ASR_OVER)
    raise typer.Exit(EXIT_OK)
