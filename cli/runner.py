"""Running flows from the CLI: settings from flags/YAML, a local Prefect API, a progress bar.

Imported only by commands that run flows (prefect and litellm load here, not at `--help`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.exits import EXIT_ASR_OVER, EXIT_BAD_INPUT, EXIT_ERRORS, EXIT_OK, EXIT_RUN_FAILED
from cli.output import escape, print_goals, print_summary
from cli.panel import DEFAULT_JUDGES, judge_specs
from flows.config import (
    AttackSpec,
    GoalsSpec,
    JudgePanelSpec,
    RunSettings,
    check_target_secrets,
    load_run_settings,
    load_target_file,
)
from flows.run_record import opened_here
from tracking import RunSummary

#: Goals listed when a run ends (all of them: `siegeflow runs show RUN_ID`).
GOALS_SHOWN = 40


def prefect_home() -> Path:
    from flows.server import default_home

    return default_home()


def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class RunFlags(BaseModel):
    """The `run` command's flags as typed (None or empty: not given), layered over a
    `--config` file by `build_settings`. A field no flag sets is an error, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    system_prompt: str | None = None
    attack: str | None = None
    attack_options: list[str] = Field(default_factory=list)
    judges: list[str] = Field(default_factory=list)
    judge_model: str | None = None
    judge_api_base: str | None = None
    rule: str | None = None
    goals: str | None = None
    goals_path: str | None = None
    limit: int | None = None
    sample: int | None = None
    seed: int | None = None
    benign: str | None = None
    benign_limit: int | None = None
    concurrency: int | None = None
    budget: float | None = None
    optimizer: str | None = None
    max_runs: int | None = None
    optimizer_options: list[str] = Field(default_factory=list)
    attacker_model: str | None = None
    attacker_api_base: str | None = None
    attacker_api_key_env: str | None = None
    db: str | None = None
    shards: int | None = None
    max_goal_chars: int | None = None
    max_response_chars: int | None = None


def build_settings(flags: RunFlags, config: Path | None = None) -> RunSettings:
    """A validated RunSettings from a YAML file (optional) with flags layered on top."""
    loaded = load_run_settings(config) if config else None
    base: dict[str, Any] = loaded.model_dump() if loaded else {}
    loaded_judges = loaded is not None and "judges" in loaded.model_fields_set
    target = dict(base.get("target") or {})
    target_file = _own_target(flags)
    if target_file is not None:
        target = load_target_file(target_file)
        flags = flags.model_copy(update={"target": None})
    target.update(_given({"model": flags.target, "api_base": flags.api_base,
                          "api_key_env": flags.api_key_env, "system_prompt": flags.system_prompt,
                          "max_response_chars": flags.max_response_chars}))
    if not target.get("model"):
        raise ValueError("no target: pass --target MODEL or a --config file with target.model")
    base["target"] = target
    if flags.attack or flags.attack_options:
        attack = dict(base.get("attack") or {})
        if flags.attack:
            attack = {"name": flags.attack, "options": {}}
        for item in flags.attack_options or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--attack-option {item!r}: expected KEY=VALUE")
            attack.setdefault("options", {})[key] = _option_value(value)
        base["attack"] = attack
    base["judges"] = _panel(base, loaded_judges, flags)
    goals = dict(base.get("goals") or {})
    if flags.goals:
        goals["source"] = flags.goals
    if flags.goals_path:
        goals["path"] = flags.goals_path
    if flags.limit is not None:
        goals["limit"] = flags.limit
    if flags.sample is not None:
        goals["sample"] = flags.sample
    if flags.seed is not None:
        goals["seed"] = flags.seed
    if flags.max_goal_chars is not None:
        goals["max_goal_chars"] = flags.max_goal_chars
    base["goals"] = goals
    if flags.benign:
        benign = {"source": flags.benign}
        if flags.goals_path:
            benign["path"] = flags.goals_path
        if flags.benign_limit is not None:
            benign["limit"] = flags.benign_limit
        base["benign"] = benign
    base.update(_given({"concurrency": flags.concurrency, "budget_usd": flags.budget,
                        "db_url": flags.db, "optimizer": flags.optimizer,
                        "shards": flags.shards}))
    if flags.max_runs is not None:
        base.setdefault("optimizer_options", {})["max_runs"] = flags.max_runs
    for item in flags.optimizer_options or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--optimizer-option {item!r}: expected KEY=VALUE")
        base.setdefault("optimizer_options", {})[key] = _option_value(value)
    if flags.optimizer_options and not base.get("optimizer"):
        raise ValueError("--optimizer-option needs an optimizer: pass --optimizer NAME")
    _attacker_flags(base, flags)
    settings = RunSettings.model_validate(base)
    check_target_secrets(settings.target, str(target_file or config or "--api-key-env"),
                         "api_key_env" if target_file or not config else "target.api_key_env")
    if settings.target.kind == "python":  # an unimportable callable fails now (exit 2)
        from targets.pyfunc import load

        load(settings.target.model)
    settings.goals.load()  # a bad goal file fails here, before anything is recorded
    if settings.benign is not None:
        if settings.optimizer:
            raise ValueError("--benign applies to attack runs, not to optimizer runs")
        settings.benign.load()
    if not settings.optimizer:  # so does a bad technique option (TechniqueError: exit 2)
        from attacks import build_technique

        build_technique(settings.attack.name, settings.attack.options)
    preflight_judges(settings)
    return settings


def _given(values: dict[str, Any]) -> dict[str, Any]:
    """The settings a flag gave (a flag left out is None and changes nothing)."""
    return {key: value for key, value in values.items() if value is not None}


def _own_target(flags: RunFlags) -> Path | None:
    """`--target http:FILE.yaml`: the file holding an HTTP app's target section."""
    value = flags.target
    if isinstance(value, str) and value.startswith("http:") \
            and value.endswith((".yaml", ".yml", ".json")):
        return Path(value.removeprefix("http:"))
    return None


def _attacker_flags(base: dict[str, Any], flags: RunFlags) -> None:
    """`--attacker-model` (+ api base, key env) as the attacker of whatever uses one: the
    optimizer, else the technique, else every suite member / compose step that takes an
    `attacker` option (a member's own attacker wins). Nothing takes one: an input error."""
    model = flags.attacker_model
    if model is None:
        for flag, value in (("--attacker-api-base", flags.attacker_api_base),
                            ("--attacker-api-key-env", flags.attacker_api_key_env)):
            if value:
                raise ValueError(f"{flag} needs --attacker-model MODEL")
        return
    attacker: dict[str, Any] = {"model": model}
    if flags.attacker_api_base:
        attacker["api_base"] = flags.attacker_api_base
    if flags.attacker_api_key_env:
        attacker["api_key_env"] = flags.attacker_api_key_env
    if base.get("optimizer"):
        options = base.setdefault("optimizer_options", {})
        options["attacker"] = {**dict(options.get("attacker") or {}), **attacker}
        return
    from attacks import get_technique

    attack = dict(base.get("attack") or {"name": "baseline"})
    options = dict(attack.get("options") or {})
    name = str(attack.get("name") or "baseline")
    members_key = {"suite": "techniques", "compose": "steps"}.get(name)
    if members_key is None:
        if "attacker" not in get_technique(name).Config.model_fields:
            raise ValueError(f"--attacker-model: technique {name!r} uses no attacker model")
        options["attacker"] = attacker
    else:
        from attacks.compose import parse_step

        members = []
        used = False
        for member in options.get(members_key) or []:
            entry = parse_step(member) if isinstance(member, str) else dict(member)
            own = dict(entry.get("options") or {})
            if "attacker" in get_technique(entry["name"]).Config.model_fields:
                own.setdefault("attacker", attacker)
                used = True
            members.append({**entry, "options": own})
        if not used:
            raise ValueError(f"--attacker-model: no technique of this {name} uses an attacker "
                             "model (give its techniques/steps explicitly)")
        options[members_key] = members
    base["attack"] = {**attack, "options": options}


def _panel(base: dict[str, Any], from_file: bool, flags: RunFlags) -> dict[str, Any]:
    """The run's judge panel: --judge/--rule flags over the file's panel; with neither, the
    CLI's default panel (the offline judge), not the library's keyword default."""
    panel = dict(base.get("judges") or {}) if from_file else {"judges": list(DEFAULT_JUDGES)}
    if flags.judges:
        panel["judges"] = judge_specs(flags.judges, flags.judge_model,
                                      flags.judge_api_base)
    if flags.rule:
        panel["rule"] = flags.rule
    return panel


def preflight_judges(settings: RunSettings) -> None:
    """Build the panel once before anything is recorded: a judge that cannot run here (the
    offline judge without its MiniLM weights, a model judge without a model) fails now, as
    bad input, instead of after the target was paid for."""
    from judges import JudgePanel

    JudgePanel.from_config(settings.judges)


class _ProgressBars:
    """The rich progress bar fed by `tasks.progress` while a flow runs in this process."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, step: str, done: int, total: int) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(step, total=total)
        self.progress.update(self.tasks[step], completed=done, total=total)


async def _run_flow(settings: RunSettings, resume_run_id: str | None, retry_errors: bool = False
                    ) -> Any:
    common = dict(
        target=settings.target, goals=settings.goals, judges=settings.judges,
        concurrency=settings.concurrency, budget_usd=settings.budget_usd, db_url=settings.db_url,
        resume_run_id=resume_run_id, return_state=True,
    )
    if settings.optimizer:
        from flows.optimize import optimize_flow

        return await optimize_flow(
            optimizer=settings.optimizer, optimizer_options=settings.optimizer_options,
            harness=settings.harness, retry_errors=retry_errors, **common,
        )
    from flows.attack import attack_flow

    return await attack_flow(attack=settings.attack, shards=settings.shards,
                             benign=settings.benign, **common)


def error_exit(summary: RunSummary, max_error_rate: float | None) -> str | None:
    """Why a completed run tested too little to pass a CI gate, or None when it did not.

    Goals that ended as target errors or could not be judged are excluded from the ASR: a run
    where every goal did (e.g. the target was unreachable) measured nothing, and exits non-zero
    even without `--max-error-rate`; with it, a larger share of error goals fails too.
    """
    total = summary.goals_total
    agent, framework = summary.errors.agent, summary.errors.framework
    if total == 0 or agent + framework == 0:
        return None
    what = f"{agent} target error(s) and {framework} not judged of {total} goal(s)"
    if agent + framework >= total:
        return f"no goal was tested: {what}; nothing is known about the target"
    rate = (agent + framework) / total
    if max_error_rate is not None and rate > max_error_rate:
        return f"{rate:.1%} of goals are errors ({what}), over --max-error-rate {max_error_rate:.1%}"
    return None


def execute(settings: RunSettings, console: Console, *, resume_run_id: str | None = None,
            fail_over: float | None = None, max_error_rate: float | None = None,
            retry_errors: bool = False) -> int:
    """Run the flow under the Prefect API commands use (flows/server.py); print results."""
    from flows.server import PrefectServerError, prefect_api
    from tasks import progress
    from tracking import default_db_url, get_backend

    settings = settings.model_copy(update={"db_url": settings.db_url or default_db_url()})
    flow_settings = settings.model_copy(update={"db_url": parameter_safe_db_url(settings.db_url)})
    bars = _ProgressBars(console)
    with contextlib.ExitStack() as stack:
        with console.status("Connecting to Prefect (a first local start migrates its DB)…"):
            try:
                api_url = stack.enter_context(prefect_api(prefect_home()))
            except PrefectServerError as exc:
                console.print(f"[bold red]error:[/] {escape(str(exc))}")
                return EXIT_RUN_FAILED
        console.print(f"Prefect API: {escape(api_url)}")
        progress.set_listener(bars)
        mark = len(opened_here())
        try:
            with bars.progress:
                state = asyncio.run(_run_flow(flow_settings, resume_run_id, retry_errors))
        except httpx.TransportError as exc:  # the server went away mid-run (stopped, lost)
            return _api_lost(console, api_url, exc, opened_here(mark))
        finally:
            progress.set_listener(None)
    backend = get_backend(settings.db_url)
    runs = backend.list_runs(prefect_flow_run_id=str(state.state_details.flow_run_id))
    if state.is_failed() or state.is_crashed() or state.is_cancelled():
        console.print(f"[bold red]Run failed:[/] {escape(state.message or state.name)}")
        for run in runs:
            console.print(f"Recorded as run {escape(run.id)} — every goal finalized; "
                          f"`siegeflow resume {escape(run.id)}` finishes it.")
        return EXIT_RUN_FAILED
    summary = state.result() if state.is_completed() else RunSummary()
    run_id = summary.run_id
    from judges.citation import cite, store_lookup

    citation = cite(settings.judges.judges, settings.judges.rule, store_lookup(backend))
    print_summary(console, summary, citation)
    if run_id:
        from reports.rows import RunPanel, best_rows_of

        run = backend.get_run(run_id)
        panel = RunPanel.of(run)
        if summary.final_rows is not None:  # each goal's best row, from this process's flow
            rows = summary.final_rows
        else:  # read goal by goal: only each goal's best row is kept
            rows = best_rows_of(backend, run, backend.list_results(run_id))
        left_out = print_goals(console, backend.list_results(run_id), rows, panel.threshold,
                               limit=GOALS_SHOWN)
        if left_out:
            console.print(f"{left_out} more goal(s) not shown (broken goals come first): "
                          f"siegeflow runs show {escape(run_id)}")
        console.print(f"Run id: [bold]{escape(run_id)}[/]   database: {escape(_safe_url(settings.db_url))}")
        if summary.report_path:
            console.print(f"HTML report: {escape(summary.report_path)}")
        console.print(f"Details: siegeflow runs show {escape(run_id)}   "
                      f"Prefect UI: siegeflow ui")
    asr = summary.asr
    if fail_over is not None and asr is not None and asr > fail_over:
        from reports.corrected import asr_pair

        console.print(f"[bold red]ASR {escape(asr_pair(summary, summary.asr_corrected))} "
                      f"exceeds --fail-over {fail_over:.1%}[/] (the gate reads the raw ASR)")
        return EXIT_ASR_OVER
    too_many = error_exit(summary, max_error_rate)
    if too_many is not None:
        console.print(f"[bold red]{escape(too_many)}[/] (exit {EXIT_ERRORS}; "
                      f"`siegeflow resume {escape(str(run_id))} --retry-errors` once the target "
                      "is back)")
        return EXIT_ERRORS
    return EXIT_OK


def _api_lost(console: Console, api_url: str, exc: Exception,
              runs: list[tuple[str, str]]) -> int:
    """The Prefect API stopped answering during the run: say so in one line, and leave the run
    as a crash hook would have (FAILED, unfinished goals ERROR_TEST_FRAMEWORK, every answer and
    verdict kept), so `siegeflow resume` finishes it — the hook itself never ran: Prefect could
    not record the flow's final state."""
    from flows.hooks import finalize_run
    from tracking import StatusEnum, get_backend

    reason = f"the Prefect API at {api_url} stopped answering during the run ({type(exc).__name__})"
    console.print(f"[bold red]Run failed:[/] {escape(reason)}")
    for db_url, run_id in runs:
        run = get_backend(db_url).get_run(run_id)
        if run is None or run.status not in (StatusEnum.PENDING, StatusEnum.RUNNING):
            continue
        finalize_run(db_url, run_id, reason)
        console.print(f"Recorded as run {escape(run_id)} — FAILED, its recorded answers kept; "
                      f"`siegeflow resume {escape(run_id)}` finishes it once the server is back.")
    return EXIT_RUN_FAILED


def parameter_safe_db_url(url: str) -> str | None:
    """The store URL to pass as a flow parameter: None when it holds a password.

    Flow parameters are shown in the Prefect UI and stored by the server; a password-bearing
    URL goes to the flow through `SIEGEFLOW_DB_URL` (inherited by this process's flow runs)
    instead, which `tracking.default_db_url()` reads.
    """
    from sqlalchemy.engine import make_url

    if make_url(url).password is None:
        return url
    os.environ["SIEGEFLOW_DB_URL"] = url
    return None


def _safe_url(url: str) -> str:
    from tracking import redact_text

    return redact_text(url)


def run_settings(settings: RunSettings, console: Console, fail_over: float | None = None,
                 max_error_rate: float | None = None) -> int:
    return execute(settings, console, fail_over=fail_over, max_error_rate=max_error_rate)


class ResumeError(ValueError):
    """A recorded run cannot be resumed as stored: the message says which field and why."""


def _redacted_paths(value: Any, path: str = "") -> list[str]:
    """Where stored parameters hold the store's redaction marker instead of a value."""
    from tracking.redaction import REDACTED

    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _redacted_paths(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _redacted_paths(v, f"{path}[{i}]")]
    return [path] if value == REDACTED else []


def resume_settings(run: Any, db_url: str, api_key_env: str | None = None) -> RunSettings:
    """The settings of a recorded run, validated; `api_key_env` replaces the target's.

    Runs recorded before variable names were kept have `target.api_key_env` stored as `***`:
    `--api-key-env NAME` supplies it again. Any other redacted field is reported by path.
    """
    from pydantic import ValidationError

    params = json.loads(json.dumps(run.parameters or {}))
    if not params.get("target"):
        raise ResumeError(f"run {run.id}: no target recorded in its parameters; cannot resume")
    if api_key_env is not None:
        params["target"]["api_key_env"] = api_key_env
    hidden = _redacted_paths(params)
    if hidden:
        hint = " (pass --api-key-env NAME)" if "target.api_key_env" in hidden else ""
        raise ResumeError(
            f"run {run.id}: its stored parameters hold redacted values at {', '.join(hidden)}"
            f"{hint}; start a new run with the same settings instead"
        )
    try:
        return RunSettings.model_validate({
            "target": params["target"],
            "attack": params.get("attack") or AttackSpec().model_dump(),
            "judges": params.get("judges") or JudgePanelSpec().model_dump(),
            "goals": params.get("goals") or GoalsSpec().model_dump(),
        "benign": params.get("benign"),
            "concurrency": params.get("concurrency", 16),
            "budget_usd": params.get("budget_usd"),
            "db_url": db_url,
            "optimizer": params.get("optimizer"),
            "optimizer_options": params.get("optimizer_options") or {},
            "harness": params.get("harness"),
        })
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ResumeError(f"run {run.id}: stored parameters are not valid: {fields}") from None


def resume_run(run_id: str, db_url: str, console: Console, *, retry_errors: bool = False,
               api_key_env: str | None = None) -> int:
    """Re-run a recorded run's flow with its stored parameters, on the same run id.

    `retry_errors`: attempts that ended as target errors (an outage longer than the backoff)
    are made pending again, so the completions step requests them anew — within the run's
    budget (what was already spent counts) and the target's rate limit. In an optimizer run,
    where each run builds on the last, the goals whose every run was a target error are
    attacked again instead (same budget and limits).
    """
    from tracking import get_backend

    backend = get_backend(db_url)
    run = backend.get_run(run_id)
    if run is None:
        console.print(f"[bold red]error:[/] no run {escape(run_id)} in {escape(_safe_url(db_url))}")
        return EXIT_BAD_INPUT
    try:
        settings = resume_settings(run, db_url, api_key_env)
    except ResumeError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return EXIT_BAD_INPUT
    if retry_errors and settings.optimizer:  # runs depend on each other: re-attack the goal
        console.print("Retrying the goals whose runs all ended as target errors.")
        return execute(settings, console, resume_run_id=run_id, retry_errors=True)
    if retry_errors:
        reopened = backend.reopen_errored_attempts(run_id)
        console.print(f"Retrying {reopened} attempt(s) that ended as target errors.")
    return execute(settings, console, resume_run_id=run_id)


def demo_settings(goals: int, db_url: str) -> RunSettings:
    """The embedded defaults: SmolLM2 behind a guardrail, model-free attacks, the offline
    judge (the CLI's default panel)."""
    from targets import embedded_target

    return RunSettings(
        target=embedded_target(),
        attack=AttackSpec(name="suite", options={"techniques": [
            {"name": "baseline"},
            {"name": "templates", "options": {"variants": ["role_play"]}},
            {"name": "encodings", "options": {"variants": ["leetspeak"]}},
            # Best-of-N with a small N, streamed like any Best-of-N (flows.steps); both samples
            # are sent (early_stop off) so every goal gets five prompts, as before Best-of-N
            # joined: the demo stays one flow run of about 1.5 minutes for 10 goals on 2 cores.
            {"name": "bon", "options": {"n": 2, "early_stop": False}},
        ]}),
        judges=JudgePanelSpec(judges=[{"name": name} for name in DEFAULT_JUDGES]),
        goals=GoalsSpec(limit=goals),
        concurrency=4,
        db_url=db_url,
    )


def run_demo(goals: int, db_url: str, console: Console) -> int:
    from judges.citation import cite, store_lookup
    from tracking import get_backend

    settings = demo_settings(goals, db_url)
    preflight_judges(settings)
    citation = cite(settings.judges.judges, settings.judges.rule,
                    store_lookup(get_backend(db_url)))
    console.print("[bold]siegeflow demo[/]: SmolLM2-135M-Instruct (local, llama.cpp) behind a "
                  "guardrail, attacked with baseline + templates + encodings + Best-of-N (N=2).")
    console.print(f"Judged by {escape(citation.text())}.")
    return execute(settings, console)
