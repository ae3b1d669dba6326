"""Judges registered by name with `@judge("name")`, and `JudgeSpec`, the config form of one.

A run config lists judges as specs; building one validates its options against the judge's own
config, so a typo fails when the config is read, with the judge and option named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from judges.base import ChatFn, Judge, JudgeConfig, ModelJudge

_REGISTRY: dict[str, type[Judge[Any]]] = {}

J = TypeVar("J", bound=type[Judge[Any]])


class JudgeError(ValueError):
    """An unknown judge name or an invalid judge config."""


@dataclass(frozen=True, kw_only=True)
class JudgeInfo:
    """What `siegeflow judges` shows for one judge."""

    name: str
    description: str
    needs_model: bool
    options: dict[str, dict[str, Any]]  # option -> {"type", "default", "required", "description"}
    schema: dict[str, Any]


def judge(name: str) -> Callable[[J], J]:
    """Register a `Judge` subclass under `name` (class decorator)."""

    def register(cls: J) -> J:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise JudgeError(f"judge {name!r} is already registered by {_REGISTRY[name]}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return register


def get_judge(name: str) -> type[Judge[Any]]:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise JudgeError(f"unknown judge {name!r}; known judges: {known}") from None


def list_judges() -> list[JudgeInfo]:
    return [
        JudgeInfo(
            name=name,
            description=_first_line(cls.__doc__),
            needs_model=cls.needs_model,
            options=_options(cls.Config),
            schema=cls.Config.model_json_schema(),
        )
        for name, cls in sorted(_REGISTRY.items())
    ]


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
    if isinstance(options, cls.Config):
        return options
    if not isinstance(options, Mapping):
        raise JudgeError(
            f"judge {cls.name!r}: options must be a mapping, got {type(options).__name__}"
        )
    try:
        return cls.Config.model_validate(dict(options))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            option = ".".join(str(part) for part in err["loc"]) or "(options)"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown option {option!r}")
            else:
                problems.append(f"option {option!r}: {err['msg']}")
        who = f"{cls.name!r}" + (f" (label {label!r})" if label else "")
        allowed = ", ".join(cls.Config.model_fields) or "(none)"
        raise JudgeError(
            f"invalid options for judge {who}: " + "; ".join(problems)
            + f" (allowed options: {allowed})"
        ) from None


def _options(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    options = {}
    for option, info in model.model_fields.items():
        annotation = info.annotation
        type_name = annotation.__name__ if isinstance(annotation, type) else str(annotation)
        options[option] = {
            "type": type_name.replace("typing.", ""),
            "default": None if info.is_required() else info.get_default(call_default_factory=True),
            "required": info.is_required(),
            "description": info.description or "",
        }
    return options


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""
