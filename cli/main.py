"""The `siegeflow` command.

Fast paths (`--help`, `runs list`, `runs show`, `attacks`, `judges`, `export`) never import
prefect or litellm (3 s and 7-12 s on a small machine); commands that run flows import them
inside the command. Exit codes: 0 ok, 1 run failed, 2 bad input, 3 ASR above `--fail-over`,
4 the run tested too little (every goal a target error, or more than `--max-error-rate`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from cli import output
from cli.goals_cmd import goals_app
from cli.judges_cmd import judges_app
from cli.server import server_app, ui

for _key, _value in {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "LITELLM_LOG": "ERROR",
}.items():
    os.environ.setdefault(_key, _value)

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_ASR_OVER = 0, 1, 2, 3

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
app.add_typer(goals_app, name="goals")
app.add_typer(judges_app, name="judges")
app.add_typer(server_app, name="server")
app.command()(ui)
console = Console()
err = Console(stderr=True)

DbOption = Annotated[
    Optional[str],
    typer.Option("--db", help="Tracking store URL (default: SQLite file in the user data dir)."),
]


def _db(url: str | None) -> str:
    """The store URL (flag, else $SIEGEFLOW_DB_URL, else the SQLite file), checked: exit 2."""
    from tracking import DB_URL_ENV, StoreUrlError, check_store_url, default_db_url

    try:
        return check_store_url(url or default_db_url())
    except StoreUrlError as exc:
        raise _bad_input(f"{'--db' if url else '$' + DB_URL_ENV}: {exc}") from None


def _bad_input(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {output.escape(message)}")
    return typer.Exit(EXIT_BAD_INPUT)


def _explain(exc: ValueError) -> str:
    """One line per problem: a pydantic error as `field: message`, anything else as is."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = ["invalid run settings:"]
    for problem in exc.errors():
        loc = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"  - {loc}: {message}" if loc else f"  - {message}")
    return "\n".join(lines)


@app.command()
def demo(
    goals: Annotated[int, typer.Option(help="How many goals of the builtin set to attack.")] = 10,
    db: DbOption = None,
) -> None:
    """Run the whole pipeline on the embedded defaults: local model, local Prefect, SQLite."""
    from cli.runner import run_demo

    try:
        code = run_demo(goals=goals, db_url=_db(db), console=console)
    except ValueError as exc:  # a judge that cannot run here (e.g. MiniLM weights missing)
        raise _bad_input(str(exc)) from None
    raise typer.Exit(code)


@app.command()
def run(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML run config.")] = None,
    target: Annotated[Optional[str], typer.Option(help="litellm model string of the target.")] = None,
    api_base: Annotated[Optional[str], typer.Option(help="Target endpoint (OpenAI-compatible).")] = None,
    api_key_env: Annotated[
        Optional[str], typer.Option(help="NAME of the env var holding the target's API key.")
    ] = None,
    system_prompt: Annotated[Optional[str], typer.Option(help="Target system prompt.")] = None,
    attack: Annotated[Optional[str], typer.Option(help="Attack technique (see `attacks`).")] = None,
    attack_option: Annotated[
        Optional[list[str]], typer.Option("--attack-option", help="KEY=VALUE (JSON value).")
    ] = None,
    judge: Annotated[Optional[list[str]], typer.Option(help="Judge name; repeat for several.")] = None,
    judge_model: Annotated[
        Optional[str], typer.Option(help="litellm model for model-based judges.")
    ] = None,
    judge_api_base: Annotated[Optional[str], typer.Option(help="Judge endpoint.")] = None,
    rule: Annotated[Optional[str], typer.Option(help="any | majority | all")] = None,
    goals: Annotated[
        Optional[str], typer.Option(help="Goal file, builtin:NAME or a preset (`siegeflow goals`).")
    ] = None,
    goals_path: Annotated[
        Optional[str], typer.Option(help="Folder holding presets' published files.")
    ] = None,
    limit: Annotated[Optional[int], typer.Option(help="Attack only the first N goals.")] = None,
    benign: Annotated[
        Optional[str], typer.Option(help="Benign control set sent plain alongside (xstest:safe, "
                                    "jbb:benign or a file): the false-refusal rate.")
    ] = None,
    benign_limit: Annotated[
        Optional[int], typer.Option(help="Send only the first N benign prompts.")
    ] = None,
    concurrency: Annotated[Optional[int], typer.Option(help="Concurrent requests.")] = None,
    budget: Annotated[Optional[float], typer.Option(help="Stop past this many USD.")] = None,
    optimizer: Annotated[
        Optional[str], typer.Option(help="Iterative attacker: name or module:Class.")
    ] = None,
    max_runs: Annotated[Optional[int], typer.Option(help="Optimizer runs per goal (cap).")] = None,
    db: DbOption = None,
    fail_over: Annotated[
        Optional[float], typer.Option(help="Exit 3 when the run's ASR exceeds this (0..1).")
    ] = None,
    max_error_rate: Annotated[
        Optional[float], typer.Option(help="Exit 4 when more than this share of goals (0..1) "
                                      "ended as target errors or not judged (default: only "
                                      "when every goal did).")
    ] = None,
    shards: Annotated[
        Optional[int],
        typer.Option(help="Split the goals over N flow runs of the attack-shard deployment, run "
                          "by the pool's workers (needs PREFECT_API_URL; docs/operations.md)."),
    ] = None,
    max_goal_chars: Annotated[
        Optional[int], typer.Option(help="A longer goal text is an input error (default 20000).")
    ] = None,
    max_response_chars: Annotated[
        Optional[int], typer.Option(help="Answers longer than this are stored truncated "
                                    "(default 100000).")
    ] = None,
) -> None:
    """Attack a target: flags, or a YAML config (`--config`) that flags then override."""
    from cli.runner import build_settings, run_settings

    try:
        settings = build_settings(
            config=config, target=target, api_base=api_base, api_key_env=api_key_env,
            system_prompt=system_prompt, attack=attack, attack_options=attack_option or [],
            judges=judge or [], judge_model=judge_model, judge_api_base=judge_api_base,
            rule=rule, goals=goals, goals_path=goals_path, limit=limit, benign=benign, benign_limit=benign_limit,
            concurrency=concurrency, budget=budget,
            optimizer=optimizer, max_runs=max_runs, db=db, shards=shards,
            max_goal_chars=max_goal_chars, max_response_chars=max_response_chars,
        )
    except ValueError as exc:  # ConfigFileError, GoalFileError, pydantic ValidationError
        raise _bad_input(_explain(exc)) from None
    _db(settings.db_url)  # the store named by the flag, the file or $SIEGEFLOW_DB_URL
    if settings.shards > 1:
        if settings.optimizer:
            raise _bad_input("--shards applies to attack runs, not to optimizer runs")
        if not _shard_server_known():
            raise _bad_input("a sharded run needs the Prefect server its workers serve: set "
                             "PREFECT_API_URL (environment or Prefect profile) or start it with "
                             "`siegeflow server start` (see docs/operations.md)")
    for name, rate in (("--fail-over", fail_over), ("--max-error-rate", max_error_rate)):
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise _bad_input(f"{name} is a rate between 0 and 1, not {rate:g}")
    raise typer.Exit(run_settings(settings, console=console, fail_over=fail_over,
                                  max_error_rate=max_error_rate))


def _shard_server_known() -> bool:
    """A server workers can serve: the one Prefect's settings name, or the running local one."""
    from flows.server import configured_api_url, default_home, server_status

    return configured_api_url() is not None or server_status(default_home()) is not None


@app.command()
def resume(
    run_id: str,
    db: DbOption = None,
    retry_errors: Annotated[
        bool, typer.Option("--retry-errors", help="Also re-request attempts that ended as "
                           "target errors (429/5xx/timeouts after backoff), within the budget.")
    ] = False,
    api_key_env: Annotated[
        Optional[str], typer.Option(help="NAME of the env var holding the target's key (for "
                                    "runs recorded with it redacted).")
    ] = None,
) -> None:
    """Finish an interrupted run: keep every recorded completion and judgment, do the rest."""
    from cli.runner import resume_run

    raise typer.Exit(resume_run(run_id, db_url=_db(db), console=console,
                                retry_errors=retry_errors, api_key_env=api_key_env))


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

    runs = get_backend(_db(db)).find_stale_runs(older_than)
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


@app.command()
def deploy(
    name: Annotated[
        Optional[list[str]], typer.Option("--name", "-n", help="Only these deployments "
                                          "(e.g. attack, attack-shard); default: all.")
    ] = None,
    pool: Annotated[
        Optional[str], typer.Option("--pool", "-p", help="Work pool (default: prefect.yaml's).")
    ] = None,
    prefect_file: Annotated[
        Optional[Path], typer.Option(help="Default: prefect.yaml at the repository root.")
    ] = None,
) -> None:
    """Register the deployments of prefect.yaml on the Prefect server commands use.

    That is the server PREFECT_API_URL names (environment or active Prefect profile), else the
    local one (started if needed). The same as `prefect deploy --all` run from the repository
    root; workers then run the flows (docs/operations.md).
    """
    import subprocess

    from flows.server import configured_api_url, default_home, ensure_server

    path = (prefect_file or Path(__file__).resolve().parents[1] / "prefect.yaml").resolve()
    if not path.is_file():
        raise _bad_input(f"no {path}")
    api_url = configured_api_url() or ensure_server(default_home()).api_url
    err.print(f"Deploying to {output.escape(api_url)}")
    prefect_bin = Path(sys.executable).with_name("prefect")
    cmd = [str(prefect_bin)] if prefect_bin.exists() else [sys.executable, "-m", "prefect"]
    cmd += ["deploy", "--no-prompt", "--prefect-file", str(path)]
    cmd += [arg for n in name for arg in ("--name", n)] if name else ["--all"]
    if pool:
        cmd += ["--pool", pool]
    env = {**os.environ, "PREFECT_API_URL": api_url}
    code = subprocess.run(cmd, cwd=path.parent, env=env, check=False).returncode  # noqa: S603
    if code == 0:
        raise typer.Exit(_ensure_zombie_automation(api_url))
    raise typer.Exit(code)


def _ensure_zombie_automation(api_url: str) -> int:
    """The automation that marks vanished deployment runs Crashed (flows/zombies.py)."""
    import asyncio

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.zombies import AUTOMATION_NAME, SILENCE_S, ensure_zombie_automation

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        asyncio.run(ensure_zombie_automation())
    err.print(f"Automation {AUTOMATION_NAME!r}: runs silent for {SILENCE_S} s are marked Crashed")
    return EXIT_OK


@runs_app.command("list")
def runs_list(
    db: DbOption = None,
    limit: Annotated[int, typer.Option(help="Most recent N runs.")] = 20,
) -> None:
    """Recorded runs, newest first."""
    from tracking import get_backend

    from judges.citation import store_lookup

    backend = get_backend(_db(db))
    output.print_runs(console, backend.list_runs(limit=limit), store_lookup(backend))


@runs_app.command("show")
def runs_show(run_id: str, db: DbOption = None) -> None:
    """One run: its summary and a per-goal table."""
    from tracking import get_backend

    backend = get_backend(_db(db))
    run_row = backend.get_run(run_id)
    if run_row is None:
        raise _bad_input(f"no run {run_id!r} in {_db(db)}")
    output.print_run(console, backend, run_row)


@app.command()
def export(
    run_id: str,
    format: Annotated[str, typer.Option("--format", "-f", help="jsonl | csv")] = "jsonl",
    out: Annotated[Optional[Path], typer.Option("--output", "-o", help="File (default: stdout).")] = None,
    db: DbOption = None,
) -> None:
    """Every attempt of a run (goal, prompt, response, verdicts) as JSONL or CSV."""
    from reports.export import export_run

    if format not in ("jsonl", "csv"):
        raise _bad_input(f"--format must be jsonl or csv, not {format!r}")
    from tracking import get_backend

    backend = get_backend(_db(db))
    if backend.get_run(run_id) is None:
        raise _bad_input(f"no run {run_id!r} in {_db(db)}")
    stream = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        export_run(backend, run_id, format, stream)
    finally:
        if out:
            stream.close()


REPORT_FORMATS = ("html", "junit", "sarif")


def _load_for_report(db: str | None, run_id: str, *, traces: bool = True):  # noqa: ANN202
    """The run's data for a report, or exit 2 when the run does not exist."""
    from reports.load import RunNotFound, load_run
    from tracking import get_backend

    try:
        return load_run(get_backend(_db(db)), run_id, with_traces=traces)
    except RunNotFound:
        raise _bad_input(f"no run {run_id!r} in {_safe_db(db)}") from None


def _safe_db(db: str | None) -> str:
    from tracking import redact_text

    return redact_text(_db(db))


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _bad_input(f"cannot write {out}: {exc.strerror or exc}") from None


@app.command()
def report(
    run_id: str,
    format: Annotated[str, typer.Option("--format", "-f", help="html | junit | sarif")] = "html",
    out: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="File (html default: siegeflow-report-RUN.html; "
                                            "junit/sarif default: stdout)."),
    ] = None,
    fail_over: Annotated[
        Optional[float], typer.Option(help="Exit 3 when the run's ASR exceeds this (0..1).")
    ] = None,
    max_chars: Annotated[
        Optional[int], typer.Option(help="HTML: characters shown per prompt/answer cell.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Write a run's report: a self-contained HTML file, JUnit XML or SARIF.

    Exit codes: 0 ok, 1 the run failed or was cancelled, 2 bad input, 3 ASR over --fail-over.
    """
    if format not in REPORT_FORMATS:
        raise _bad_input(f"--format must be one of {', '.join(REPORT_FORMATS)}, not {format!r}")
    if fail_over is not None and not 0.0 <= fail_over <= 1.0:
        raise _bad_input("--fail-over is a rate between 0 and 1")
    data = _load_for_report(db, run_id, traces=format == "html")
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


def _report_exit(data, fail_over: float | None) -> int:  # noqa: ANN001
    from reports.figures import asr_text, headline, pct

    if data.failed:
        err.print(f"[bold red]run {output.escape(data.run_id)} is {data.run.status.value}[/]")
        return EXIT_RUN_FAILED
    asr = headline(data).overall.asr
    if fail_over is not None and asr is not None and asr > fail_over:
        o = headline(data).overall
        err.print(f"[bold red]ASR {output.escape(asr_text(o.broken, o.judged))} exceeds "
                  f"--fail-over {pct(fail_over)}[/]")
        return EXIT_ASR_OVER
    return EXIT_OK


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="The baseline run (before the change).")],
    run_b: Annotated[str, typer.Argument(help="The run after the change.")],
    out: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Also write the HTML view here.")
    ] = None,
    fail_on_regression: Annotated[
        bool, typer.Option(help="Exit 3 when any goal became broken in RUN_B.")
    ] = False,
    db: DbOption = None,
    db_b: Annotated[
        Optional[str], typer.Option("--db-b", help="Store of RUN_B when it is not --db's.")
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


@app.command()
def attacks() -> None:
    """Registered attack techniques and their options."""
    from attacks import list_techniques

    output.print_registry(console, "Attack techniques", list_techniques())


@app.command()
def optimizers() -> None:
    """Registered iterative attackers (`run --optimizer NAME`) and their options."""
    from optimizers.registry import list_optimizers

    output.print_registry(console, "Optimizers", list_optimizers())


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        _exit(exc.code)
    _exit(0)


def _exit(code: int | str | None) -> None:
    """Exit; after a flow ran, without tearing the interpreter down object by object.

    Finalizing the heap a Prefect run leaves (thousands of modules, pydantic models, clients)
    takes 1-3 s after the work is done. Exit handlers (Prefect's log/event workers, logging,
    the tracking writer) still run; then the process ends without the finalization.
    """
    if "prefect" not in sys.modules:
        raise SystemExit(code)
    import atexit

    atexit._run_exitfuncs()
    if isinstance(code, str):
        err.print(code)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
