"""`siegeflow review RUN_ID` (a person labels a random sample of the run's judged goals) and
`siegeflow review export RUN_ID -o labels.jsonl`. The logic is in `reports.review`."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import output
from cli.app import DbOption, app, bad_input, console, db_url, err, safe_db
from cli.exits import EXIT_OK

if TYPE_CHECKING:
    from reports.review.items import ReviewFigures, ReviewSession
    from tracking import SQLBackend


def _reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return "reviewer"


@app.command()
def review(
    run_id: Annotated[str, typer.Argument(help="The run to review (or `export`).")],
    export_run: Annotated[
        str | None, typer.Argument(help="With `export`: the run whose labels to write.")
    ] = None,
    sample: Annotated[int, typer.Option(help="Goals in the run's review sample: draws more "
                                        "when it holds fewer (stratified by verdict).")] = 50,
    seed: Annotated[
        int | None, typer.Option(help="Seed of this draw (default: random; recorded).")
    ] = None,
    reviewer: Annotated[
        str | None, typer.Option(help="Who labels (default: the OS user name).")
    ] = None,
    min_reviewed: Annotated[
        int, typer.Option(help="Labelled goals needed before the figures are given.")
    ] = 30,
    tui: Annotated[bool, typer.Option("--tui", help="Plain terminal prompts, no browser.")] = False,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Also open the page in the default browser.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (default: a free one).")] = 0,
    out: Annotated[
        Path | None, typer.Option("--output", "-o", help="export: the labels file (JSONL).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Label a random sample of a run's judged goals (the judges' verdicts stay hidden until
    you answer); prints the panel's agreement with you and the prediction-powered ASR.

    `siegeflow review export RUN_ID -o labels.jsonl` writes the labels for `judges validate`.
    """
    from reports.load import RunNotFound, load_run
    from tracking import get_backend

    backend = get_backend(db_url(db))
    if run_id == "export":
        if export_run is None or out is None:
            raise bad_input("usage: siegeflow review export RUN_ID -o labels.jsonl")
        from reports.review.export import export_labels

        if backend.get_run(export_run) is None:
            raise bad_input(f"no run {export_run!r} in {safe_db(db)}")
        try:
            count = export_labels(backend, export_run, out, reviewer)
        except OSError as exc:
            raise bad_input(f"cannot write {out}: {exc.strerror or exc}") from None
        err.print(f"{count} labelled item(s) written to {output.escape(str(out))}")
        raise typer.Exit(EXIT_OK)
    if export_run is not None:
        raise bad_input(f"unexpected argument {export_run!r}")
    if sample < 1 or min_reviewed < 1:
        raise bad_input("--sample and --min-reviewed are at least 1")
    from reports.review.items import ReviewSession
    from reports.review.sample import draw_sample
    from reports.review_figures import review_lines

    try:
        data = load_run(backend, run_id, with_traces=False)
    except RunNotFound:
        raise bad_input(f"no run {run_id!r} in {safe_db(db)}") from None
    if not data.run.status.is_terminal:  # its strata would still change under the sample
        raise bad_input(f"run {run_id!r} is {data.run.status.value}: review it once it has "
                        "finished (`siegeflow resume` finishes an interrupted run)")
    drawn = draw_sample(backend, data, sample, seed)
    if drawn.count:
        err.print(f"Drew {drawn.count} more goal(s) (broken {drawn.added['broken']} of "
                  f"{drawn.sizes['broken']}, held {drawn.added['held']} of "
                  f"{drawn.sizes['held']}; seed {drawn.seed}); the sample holds "
                  f"{sum(drawn.drawn.values())}.")
    session = ReviewSession(backend, run_id, reviewer or _reviewer())
    if not session.items:
        raise bad_input(f"run {run_id!r} has no judged goals to review")
    if tui:
        from reports.review.tui import run_tui

        run_tui(session, console)
    else:
        _serve(session, port, open_browser, min_reviewed)
    figures = session.figures(min_reviewed)
    for line in review_lines(figures):
        console.print(output.escape(line))
    if figures is not None and figures.enough:
        _republish(backend, run_id, figures)
    raise typer.Exit(EXIT_OK)


def _republish(backend: SQLBackend, run_id: str, figures: ReviewFigures) -> None:
    """The run's Prefect summary artifact, published again with the review's figures (on the
    Prefect API the run's commands use); a server that does not answer is one line, not a
    failure: the labels are in the store and every report reads them from there."""
    import asyncio

    from prefect.exceptions import PrefectHTTPStatusError

    from cli.runner import prefect_home
    from flows.artifacts import publish_review_summary
    from flows.server import PrefectServerError, prefect_api

    run = backend.get_run(run_id)
    if run is None or not run.prefect_flow_run_id:  # recorded without Prefect: nothing to update
        return
    try:
        with prefect_api(prefect_home()):
            published = asyncio.run(publish_review_summary(backend, run_id, figures))
    except (PrefectServerError, PrefectHTTPStatusError, OSError) as exc:
        err.print(f"Prefect summary artifact not updated: {output.escape(str(exc), 300)}")
        return
    if published:
        err.print("Prefect summary artifact updated with the review (siegeflow ui).")


def _serve(session: ReviewSession, port: int, open_browser: bool, min_reviewed: int) -> None:
    """Serve the page until Ctrl-C."""
    import threading

    from reports.review.server import ReviewServer

    server = ReviewServer(session, port=port, min_reviewed=min_reviewed)
    server.start()
    done, total = session.progress()
    console.print(f"Review page ({done} of {total} answered): {server.url}", soft_wrap=True,
                  highlight=False)
    console.print("Keys: y yes · n no · s skip · e note · Enter next. Ctrl-C to stop.")
    console.file.flush()
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
