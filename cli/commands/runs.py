"""Commands that run flows: `demo`, `run`, `resume`, `deploy` (prefect loads inside them)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli import output
from cli.app import DbOption, app, bad_input, console, db_url, err
from cli.exits import EXIT_OK


@app.command()
def demo(
    goals: Annotated[int, typer.Option(help="How many goals of the builtin set to attack.")] = 10,
    db: DbOption = None,
) -> None:
    """Run the whole pipeline on the embedded defaults: local model, local Prefect, SQLite."""
    from cli.runner import run_demo

    try:
        code = run_demo(goals=goals, db_url=db_url(db), console=console)
    except ValueError as exc:  # a judge that cannot run here (e.g. MiniLM weights missing)
        raise bad_input(str(exc)) from None
    raise typer.Exit(code)


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML run config.")] = None,
    target: Annotated[str | None, typer.Option(help="litellm model string of the target.")] = None,
    api_base: Annotated[str | None, typer.Option(help="Target endpoint (OpenAI-compatible).")] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="NAME of the env var holding the target's API key.")
    ] = None,
    system_prompt: Annotated[str | None, typer.Option(help="Target system prompt.")] = None,
    attack: Annotated[str | None, typer.Option(help="Attack technique (see `attacks`).")] = None,
    attack_option: Annotated[
        list[str] | None, typer.Option("--attack-option", help="KEY=VALUE (JSON value).")
    ] = None,
    judge: Annotated[list[str] | None, typer.Option(help="Judge name; repeat for several.")] = None,
    judge_model: Annotated[
        str | None, typer.Option(help="litellm model for model-based judges.")
    ] = None,
    judge_api_base: Annotated[str | None, typer.Option(help="Judge endpoint.")] = None,
    rule: Annotated[str | None, typer.Option(help="any | majority | all")] = None,
    goals: Annotated[
        str | None, typer.Option(help="Goal file, builtin:NAME or a preset (`siegeflow goals`).")
    ] = None,
    goals_path: Annotated[
        str | None, typer.Option(help="Folder holding presets' published files.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Attack only the first N goals.")] = None,
    sample: Annotated[int | None, typer.Option(
        help="Attack a random sample of N goals, stratified by category (see --seed).")] = None,
    seed: Annotated[int | None, typer.Option(
        help="The --sample seed: the same seed picks the same goals (default 0).")] = None,
    benign: Annotated[
        str | None, typer.Option(help="Benign control set sent plain alongside (xstest:safe, "
                                    "jbb:benign or a file): the false-refusal rate.")
    ] = None,
    benign_limit: Annotated[
        int | None, typer.Option(help="Send only the first N benign prompts.")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Concurrent requests.")] = None,
    budget: Annotated[float | None, typer.Option(help="Stop past this many USD.")] = None,
    optimizer: Annotated[
        str | None, typer.Option(help="Iterative attacker: name or module:Class.")
    ] = None,
    optimizer_option: Annotated[
        list[str] | None,
        typer.Option("--optimizer-option", help="KEY=VALUE (JSON value): the optimizer's own "
                     "options and the flow's (attacker, max_runs, harness...)."),
    ] = None,
    attacker_model: Annotated[
        str | None,
        typer.Option(help="litellm model of the attacker: the optimizer's, or the technique's "
                          "(past_tense, translation, advprefix; in a suite, each that takes one)."),
    ] = None,
    attacker_api_base: Annotated[
        str | None, typer.Option(help="Attacker endpoint (OpenAI-compatible).")
    ] = None,
    attacker_api_key_env: Annotated[
        str | None, typer.Option(help="NAME of the env var holding the attacker's API key.")
    ] = None,
    max_runs: Annotated[int | None, typer.Option(help="Optimizer runs per goal (cap).")] = None,
    db: DbOption = None,
    fail_over: Annotated[
        float | None, typer.Option(help="Exit 3 when the run's ASR exceeds this (0..1).")
    ] = None,
    max_error_rate: Annotated[
        float | None, typer.Option(help="Exit 4 when more than this share of goals (0..1) "
                                      "ended as target errors or not judged (default: only "
                                      "when every goal did).")
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(help="Split the goals over N flow runs of the attack-shard deployment, run "
                          "by the pool's workers (needs PREFECT_API_URL; docs/operations.md)."),
    ] = None,
    max_goal_chars: Annotated[
        int | None, typer.Option(help="A longer goal text is an input error (default 20000).")
    ] = None,
    max_response_chars: Annotated[
        int | None, typer.Option(help="Answers longer than this are stored truncated "
                                    "(default 100000).")
    ] = None,
) -> None:
    """Attack a target: flags, or a YAML config (`--config`) that flags then override."""
    from cli.runner import RunFlags, build_settings, run_settings

    try:
        settings = build_settings(RunFlags(
            target=target, api_base=api_base, api_key_env=api_key_env,
            system_prompt=system_prompt, attack=attack, attack_options=attack_option or [],
            judges=judge or [], judge_model=judge_model, judge_api_base=judge_api_base,
            rule=rule, goals=goals, goals_path=goals_path, limit=limit, sample=sample, seed=seed,
            benign=benign, benign_limit=benign_limit, concurrency=concurrency, budget=budget,
            optimizer=optimizer, max_runs=max_runs, db=db, shards=shards,
            optimizer_options=optimizer_option or [], attacker_model=attacker_model,
            attacker_api_base=attacker_api_base, attacker_api_key_env=attacker_api_key_env,
            max_goal_chars=max_goal_chars, max_response_chars=max_response_chars,
        ), config)
    except ValueError as exc:  # ConfigFileError, GoalFileError, pydantic ValidationError
        raise bad_input(_explain(exc)) from None
    db_url(settings.db_url)  # the store named by the flag, the file or $SIEGEFLOW_DB_URL
    from goals import benign_goals_warning

    note = benign_goals_warning(settings.goals.source)
    if note:  # also in the run's summary and report
        err.print(f"[yellow]Warning:[/] {output.escape(note)}")
    if settings.shards > 1:
        if settings.optimizer:
            raise bad_input("--shards applies to attack runs, not to optimizer runs")
        if not _shard_server_known():
            raise bad_input("a sharded run needs the Prefect server its workers serve: set "
                            "PREFECT_API_URL (environment or Prefect profile) or start it with "
                            "`siegeflow server start` (see docs/operations.md)")
    for name, rate in (("--fail-over", fail_over), ("--max-error-rate", max_error_rate)):
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise bad_input(f"{name} is a rate between 0 and 1, not {rate:g}")
    raise typer.Exit(run_settings(settings, console=console, fail_over=fail_over,
                                  max_error_rate=max_error_rate))


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
        str | None, typer.Option(help="NAME of the env var holding the target's key (for "
                                    "runs recorded with it redacted).")
    ] = None,
) -> None:
    """Finish an interrupted run: keep every recorded completion and judgment, do the rest."""
    from cli.runner import resume_run

    raise typer.Exit(resume_run(run_id, db_url=db_url(db), console=console,
                                retry_errors=retry_errors, api_key_env=api_key_env))


@app.command()
def deploy(
    name: Annotated[
        list[str] | None, typer.Option("--name", "-n", help="Only these deployments "
                                          "(e.g. attack, attack-shard); default: all.")
    ] = None,
    pool: Annotated[
        str | None, typer.Option("--pool", "-p", help="Work pool (default: prefect.yaml's).")
    ] = None,
    prefect_file: Annotated[
        Path | None, typer.Option(help="Default: prefect.yaml at the repository root.")
    ] = None,
) -> None:
    """Register the deployments of prefect.yaml on the Prefect server commands use.

    That is the server PREFECT_API_URL names (environment or active Prefect profile), else the
    local one (started if needed). The same as `prefect deploy --all` run from the repository
    root; workers then run the flows (docs/operations.md).
    """
    import subprocess

    from flows.server import configured_api_url, default_home, ensure_server

    path = (prefect_file or Path(__file__).resolve().parents[2] / "prefect.yaml").resolve()
    if not path.is_file():
        raise bad_input(f"no {path}")
    api_url = configured_api_url() or ensure_server(default_home()).api_url
    err.print(f"Deploying to {output.escape(api_url)}")
    prefect_bin = Path(sys.executable).with_name("prefect")
    cmd = [str(prefect_bin)] if prefect_bin.exists() else [sys.executable, "-m", "prefect"]
    cmd += ["deploy", "--no-prompt", "--prefect-file", str(path)]
    cmd += [arg for n in name for arg in ("--name", n)] if name else ["--all"]
    if pool:
        cmd += ["--pool", pool]
    env = {**os.environ, "PREFECT_API_URL": api_url}
    code = subprocess.run(cmd, cwd=path.parent, env=env, check=False).returncode
    if code == 0:
        raise typer.Exit(_ensure_zombie_automation(api_url))
    raise typer.Exit(code)


def _ensure_zombie_automation(api_url: str) -> int:
    """The automation that marks vanished deployment runs Crashed (flows/zombies.py)."""
    import asyncio

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.zombies import AUTOMATION_NAME, ensure_zombie_automation, silence_s

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        asyncio.run(ensure_zombie_automation())
    err.print(f"Automation {AUTOMATION_NAME!r}: runs with no siegeflow heartbeat for "
              f"{silence_s():.0f} s (SIEGEFLOW_ZOMBIE_SILENCE_S) are marked Crashed")
    return EXIT_OK
