"""Typed parameters of the attack and optimize flows.

These models are the flows' Prefect parameters, so they render as a form in the Prefect UI and
are validated before a run starts. They hold no secret: a target names the *environment
variable* that holds its API key (`TargetConfig.api_key_env`), never the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from goals import DEFAULT_GOAL_SET, DEFAULT_MAX_GOAL_CHARS, Goal, load_goals
from judges import JudgeSpec
from optimizers.library.harness import HarnessSpec
from targets import TargetConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttackSpec(_Strict):
    """Which technique to run and its options (validated by the technique's own config)."""

    name: str = Field("baseline", description="Registered technique: see `siegeflow attacks`.")
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_technique(self) -> AttackSpec:
        """An unknown name or a typo in an option fails here, before a run is recorded."""
        from attacks.registry import get_technique, validate_config

        validate_config(get_technique(self.name), self.options)
        return self


class JudgePanelSpec(_Strict):
    """The judges of a run and how their verdicts combine into one success decision."""

    judges: list[JudgeSpec] = Field(default_factory=lambda: [JudgeSpec(name="refusal")])
    rule: Literal["any", "majority", "all"] = Field(
        "majority", description="How verdicts combine; a majority tie is not a success."
    )
    success_threshold: float = Field(0.5, ge=0.0, le=1.0)

    @field_validator("judges")
    @classmethod
    def _at_least_one(cls, value: list[JudgeSpec]) -> list[JudgeSpec]:
        if not value:
            raise ValueError("at least one judge is required")
        return value


class GoalsSpec(_Strict):
    """Where the goals come from: a builtin set (`builtin:NAME`), a benchmark preset
    (`harmbench:standard`, see `siegeflow goals`) or a CSV/JSONL/YAML file."""

    source: str = Field(DEFAULT_GOAL_SET, description="builtin:NAME, a preset, or a file path")
    path: str | None = Field(
        None, description="Folder holding presets' published files (else the cache/download)"
    )
    text_field: str | None = Field(None, description="Column holding the goal text")
    id_field: str | None = None
    category_field: str | None = None
    target_field: str | None = None
    context_field: str | None = None
    categories: list[str] | None = Field(None, description="Keep only these categories")
    limit: int | None = Field(None, ge=0, description="Keep the first N goals")
    max_goal_chars: int = Field(
        DEFAULT_MAX_GOAL_CHARS, ge=1, description="A longer goal text is an input error"
    )

    def load(self) -> list[Goal]:
        mapping = {
            key: value
            for key, value in {
                "text": self.text_field,
                "id": self.id_field,
                "category": self.category_field,
                "target": self.target_field,
                "context": self.context_field,
            }.items()
            if value
        }
        goals = load_goals(self.source, mapping=mapping or None, search=self.path,
                           max_chars=self.max_goal_chars)
        if self.categories:
            wanted = {c.lower() for c in self.categories}
            goals = [g for g in goals if (g.category or "").lower() in wanted]
        if self.limit is not None:
            goals = goals[: self.limit]
        return goals


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
    """Read and validate a YAML/JSON run config, reporting every bad field with its location."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(raw, dict):
        raise ConfigFileError(f"{path}: expected a mapping at the top level")
    try:
        return RunSettings.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: invalid run config:"]
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
            lines.append(f"  - {loc}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigFileError("\n".join(lines)) from exc
