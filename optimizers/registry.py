"""Optimizers by name (`pair`, `tap`, ...) or by import path (`my_pkg.attacks:MyOptimizer`).

A shipped optimizer registers itself with `@optimizer("name")` and declares a pydantic `Config`;
`build_optimizer` validates the options against it. A user's optimizer needs nothing from this
module: any `Optimizer` subclass reachable as `module:Class` runs. If it has a pydantic `Config`
class attribute the options are validated with it and passed as the one argument; otherwise they
are passed as keyword arguments.

Shipped optimizers are imported on first lookup, so importing the registry stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.registry import Registry, explain, first_line
from optimizers.base import Optimizer


class OptimizerError(ValueError):
    """Unknown optimizer, a path that is not an Optimizer, or invalid options."""


def _load_library() -> None:
    importlib.import_module("optimizers.library")


REGISTRY: Registry[Optimizer] = Registry(
    "optimizer", error=OptimizerError, base=Optimizer, loader=_load_library,
    hint=" (or give 'module:Class')", group="siegeflow.optimizers",
    base_label="optimizers.Optimizer",
)

OptimizerT = TypeVar("OptimizerT", bound=type[Optimizer])


@dataclass(frozen=True, kw_only=True)
class OptimizerInfo:
    """What `list_optimizers` reports for one optimizer."""

    name: str
    description: str
    needs_attacker: bool
    consumption: str  # "sequential" | "parallel" | "continuous"
    options: dict[str, dict[str, Any]]
    schema: dict[str, Any]


def optimizer(name: str) -> Callable[[OptimizerT], OptimizerT]:
    """Register an Optimizer subclass under `name` (class decorator)."""
    return REGISTRY.register(name)


def get_optimizer(name_or_path: str) -> type[Optimizer]:
    """The class registered as `name`, a plugin's entry point, or imported from `module:Class`."""
    return REGISTRY.get(name_or_path)


def config_class(cls: type[Optimizer]) -> type[BaseModel] | None:
    config = getattr(cls, "Config", None)
    return config if isinstance(config, type) and issubclass(config, BaseModel) else None


def validate_options(name_or_path: str, options: Mapping[str, Any] | None) -> Any:
    """The validated config (a pydantic model), or the plain dict for a class without Config."""
    cls = get_optimizer(name_or_path)
    config = config_class(cls)
    if config is None:
        return dict(options or {})
    try:
        return config.model_validate(dict(options or {}))
    except ValidationError as exc:
        raise OptimizerError(
            f"invalid options for optimizer {name_or_path!r}: {explain(config, exc)}"
        ) from None


def build_optimizer(name_or_path: str, options: Mapping[str, Any] | None = None) -> Optimizer:
    """A fresh optimizer instance (one per goal: it keeps the goal's trajectories)."""
    cls = get_optimizer(name_or_path)
    config = validate_options(name_or_path, options)
    if config_class(cls) is not None:
        return cls(config)  # type: ignore[call-arg]  # a class with a Config takes it
    try:
        return cls(**config)
    except TypeError as exc:
        raise OptimizerError(
            f"cannot build optimizer {name_or_path!r} with {sorted(config)}: {exc}"
        ) from exc


def needs_attacker(name_or_path: str) -> bool:
    return bool(getattr(get_optimizer(name_or_path), "needs_attacker", False))


def list_optimizers() -> list[OptimizerInfo]:
    return [_info(name, cls) for name, cls in REGISTRY.items()]


def _info(name: str, cls: type[Optimizer]) -> OptimizerInfo:
    config = config_class(cls)
    schema = config.model_json_schema() if config is not None else {}
    options = {
        key: {
            "type": prop.get("type", "any"),
            "default": prop.get("default"),
            "description": prop.get("description", ""),
        }
        for key, prop in schema.get("properties", {}).items()
    }
    return OptimizerInfo(
        name=name,
        description=first_line(cls.__doc__),
        needs_attacker=bool(getattr(cls, "needs_attacker", False)),
        consumption=str(getattr(cls, "consumption", "sequential")),
        options=options,
        schema=schema,
    )
