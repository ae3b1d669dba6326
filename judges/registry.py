"""Judges registered by name with `@judge("name")`, and `JudgeSpec`, the config form of one.

A run config lists judges as specs; building one validates its options against the judge's own
config, so a typo fails when the config is read, with the judge and option named.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.registry import PluginInfo, Registry
from core.registry import validate_config as _validate
from judges.base import ChatFn, Judge, JudgeConfig, ModelJudge


class JudgeError(ValueError):
    """An unknown judge name or an invalid judge config."""


#: The modules whose `@judge` classes are the shipped judges.
SHIPPED = ("classifiers", "copyright", "offline", "refusal", "rubrics", "template")


def _load_shipped() -> None:
    """Register the shipped judges on the registry's first read, not on `import judges`: the
    commands that only read the store (`runs list`, `runs show`) never pay for them."""
    for name in SHIPPED:
        importlib.import_module(f"judges.{name}")


REGISTRY: Registry[Judge[Any]] = Registry(
    "judge", error=JudgeError, base=Judge, group="siegeflow.judges", base_label="judges.Judge",
    hint=" (or give 'module:Class')", loader=_load_shipped,
)

J = TypeVar("J", bound=type[Judge[Any]])
JudgeInfo = PluginInfo  # what `siegeflow judges` shows for one judge
judge: Callable[[str], Callable[[J], J]] = REGISTRY.register  # @judge("name") on a Judge class
get_judge, list_judges = REGISTRY.get, REGISTRY.infos


class JudgeSpec(BaseModel):
    """One judge of a panel: `name`, an optional `label` (the verdict's name, needed when the
    same judge appears twice, e.g. with two models) and its `options`.

    Accepts a bare name (`"refusal"`) or a flat mapping (`{name: harmbench, model: {...}}`):
    keys other than name/label are taken as options.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, Mapping) and "name" in value:
            flat = {k: v for k, v in value.items() if k not in ("name", "label", "options")}
            if flat:
                options = dict(value.get("options") or {})
                clash = sorted(set(flat) & set(options))
                if clash:
                    raise ValueError(f"option(s) {clash} given both flat and under 'options'")
                return {"name": value["name"], "label": value.get("label"),
                        "options": {**options, **flat}}
        return value

    @model_validator(mode="after")
    def _known_and_valid(self) -> JudgeSpec:
        validate_config(get_judge(self.name), self.options, label=self.label)
        return self

    @property
    def key(self) -> str:
        """The name this judge's verdicts are recorded under."""
        return self.label or self.name


def build_judge(
    spec: JudgeSpec | Mapping[str, Any] | str,
    *,
    chat: ChatFn | None = None,
) -> Judge[Any]:
    """Instantiate a judge from a spec (or its dict/str shorthand).

    `chat` injects the model call (tests, or a caller-managed client); otherwise a model judge
    builds it from its `model` option on first use.
    """
    spec = parse_spec(spec)
    cls = get_judge(spec.name)
    config = validate_config(cls, spec.options, label=spec.label)
    try:
        if issubclass(cls, ModelJudge):
            return cls(config, label=spec.label, chat=chat)
        return cls(config, label=spec.label)
    except ValueError as exc:  # e.g. a model judge without a model
        raise JudgeError(str(exc)) from None


def parse_spec(spec: JudgeSpec | Mapping[str, Any] | str) -> JudgeSpec:
    """A JudgeSpec from itself or its dict/str shorthand; errors as JudgeError."""
    if isinstance(spec, JudgeSpec):
        return spec
    try:
        return JudgeSpec.model_validate(spec)
    except ValidationError as exc:
        err = exc.errors()[0]
        problem = err.get("ctx", {}).get("error")
        if isinstance(problem, JudgeError):
            raise problem from None
        where = ".".join(str(part) for part in err["loc"])
        where = f" ({where})" if where else ""
        raise JudgeError(f"invalid judge spec{where}: {err['msg']}") from None


def validate_config(
    cls: type[Judge[Any]], options: Any, *, label: str | None = None
) -> JudgeConfig:
    who = f"judge {cls.name!r}" + (f" (label {label!r})" if label else "")
    return _validate(cls.Config, options, what=who, error=JudgeError)
