"""Typed parameters of the attack and optimize flows: `RunSettings`, the one run document.

`AttackSpec`, `JudgePanelSpec` and `GoalsSpec` live with their packages (tasks read them too)
and are re-exported here.

These models are the flows' Prefect parameters, so they render as a form in the Prefect UI and
are validated before a run starts. They hold no secret: a target names the *environment
variable* that holds its API key (`TargetConfig.api_key_env`), never the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from attacks.spec import AttackSpec
from goals.spec import GoalsSpec
from judges.spec import JudgePanelSpec
from optimizers.library.harness import HarnessSpec
from targets import TargetConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSettings(_Strict):
    """Everything a run needs, as one document (`siegeflow run --config FILE`)."""

    target: TargetConfig
    attack: AttackSpec = Field(default_factory=AttackSpec)
    judges: JudgePanelSpec = Field(default_factory=JudgePanelSpec)
    goals: GoalsSpec = Field(default_factory=GoalsSpec)
    benign: GoalsSpec | None = Field(
        None, description="Benign control set (e.g. xstest:safe) sent plain alongside the attacks: "
        "the false-refusal rate, never part of the ASR",
    )
    concurrency: int = Field(16, ge=1, le=1024, description="Concurrent requests per step")
    budget_usd: float | None = Field(None, gt=0, description="Stop cleanly past this spend")
    db_url: str | None = Field(None, description="Tracking store URL (default: SQLite file)")
    optimizer: str | None = Field(None, description="Iterative attacker (optimize flow)")
    optimizer_options: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    harness: HarnessSpec | None = Field(
        None, description="Optimize flow: chat or agent target harness, and the optimizer's scope"
    )
    shards: int = Field(1, ge=1, le=64, description="Flow runs of attack-shard to split goals over")

    @field_validator("db_url")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        from tracking import check_store_url

        return None if value is None else check_store_url(value)

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str | None) -> str | None:
        """An unknown optimizer fails here, before a run is recorded."""
        if value:
            from optimizers.registry import get_optimizer

            get_optimizer(value)
        return value

    @field_validator("optimizer_options")
    @classmethod
    def _optimizer_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """The flow's and the optimizer's own options, checked as the optimize flow will."""
        optimizer = info.data.get("optimizer")
        if optimizer:
            from optimizers.library.options import OptimizeOptions
            from optimizers.registry import needs_attacker, validate_options

            options, own = OptimizeOptions.split(value)
            validate_options(optimizer, own)
            if options.attacker is None and needs_attacker(optimizer):
                raise ValueError(f"optimizer {optimizer!r} needs an attacker model: set "
                                 "optimizer_options.attacker = {model: ..., api_base: ...}")
        return value


class ConfigFileError(ValueError):
    """A run config file is unreadable or invalid: the message names the file and fields."""


def load_run_settings(path: str | Path) -> RunSettings:
    """Read and validate a YAML/JSON run config, reporting every bad field with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})"
                              ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(raw, dict):
        raise ConfigFileError(f"{path}: expected a mapping at the top level")
    try:
        return RunSettings.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(path, text, "run config", exc) from exc


def _config_error(path: Path, text: str, what: str, exc: ValidationError) -> ConfigFileError:
    """One line per bad field of a YAML/JSON file, each with the file's line that holds it."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    lines = [f"{path}: invalid {what}:"]
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        line = _line_of(root, list(err["loc"]), msg)
        lines.append(f"  - {path}:{line}: field {loc}: {msg}" if line
                     else f"  - {path}: field {loc}: {msg}")
    return ConfigFileError("\n".join(lines))


def load_target_file(path: str | Path) -> dict[str, Any]:
    """A target section from its own YAML/JSON file (`--target http:FILE`), validated now and
    returned as data to layer flags on; `model` defaults to `http:<file stem>`. A bad field
    fails naming the file, the line and the field; so does a key variable that is not set."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigFileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigFileError(f"{path}: expected a mapping at the top level")
    if "model" not in raw and "endpoint" in raw:
        raw["model"] = f"http:{path.stem}"
    try:
        target = TargetConfig.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(path, text, "target config", exc) from exc
    check_target_secrets(target, str(path))
    return raw


def check_target_secrets(target: TargetConfig, where: str, field: str = "api_key_env") -> None:
    """An HTTP/Python target whose key variable is unset fails before the run (exit 2): every
    attempt would otherwise end as an auth error against your own app."""
    import os

    if target.kind != "model" and target.api_key_env and not os.environ.get(target.api_key_env):
        raise ConfigFileError(f"{where}: field {field}: environment variable "
                              f"{target.api_key_env} is not set")


_OPTION_IN_MESSAGE = re.compile(r"option '([^']+)'")


def _line_of(root: yaml.Node | None, loc: list[Any], message: str) -> int | None:
    """The 1-based line of the field at `loc` (of the option inside it that the message names,
    when there is one), else of its deepest ancestor present in the file."""
    named = _OPTION_IN_MESSAGE.search(message)
    tries = [loc + ["options", named.group(1)], loc + [named.group(1)]] if named else []
    for path in tries:
        reached, line = _walk(root, path)
        if reached == len(path):
            return line
    return _walk(root, loc)[1]


def _walk(node: yaml.Node | None, path: list[Any]) -> tuple[int, int | None]:
    """How many parts of `path` exist in the file, and the line of the last one (its key)."""
    reached, line = 0, None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            pair = next((kv for kv in node.value
                         if isinstance(kv[0], yaml.ScalarNode) and kv[0].value == str(part)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
        reached += 1
    return reached, line


__all__ = [
    "AttackSpec",
    "ConfigFileError",
    "GoalsSpec",
    "JudgePanelSpec",
    "RunSettings",
    "check_target_secrets",
    "load_run_settings",
    "load_target_file",
]
