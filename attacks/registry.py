"""Techniques registered by name with `@technique("name")`, built from plain config dicts.

The registry is what the CLI lists and what a run config names, so every error says which
technique and which option is wrong, and what would have been accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from attacks.base import ChatFn, Technique, TechniqueConfig
from core.registry import PluginInfo, Registry, config_options
from core.registry import validate_config as _validate


class TechniqueError(ValueError):
    """An unknown technique name or an invalid technique config."""


REGISTRY: Registry[Technique[Any]] = Registry(
    "technique", error=TechniqueError, base=Technique, group="siegeflow.attacks",
    base_label="attacks.Technique", hint=" (or give 'module:Class')",
)

T = TypeVar("T", bound=type[Technique[Any]])


#: What `siegeflow attacks` shows for one technique.
TechniqueInfo = PluginInfo

#: `@technique("name")` registers a `Technique` subclass under `name`.
technique: Callable[[str], Callable[[T], T]] = REGISTRY.register
get_technique = REGISTRY.get
list_techniques = REGISTRY.infos


def build_technique(
    name: str,
    config: Mapping[str, Any] | TechniqueConfig | None = None,
    *,
    attacker_chat: ChatFn | None = None,
) -> Technique[Any]:
    """Instantiate technique `name` with a validated config.

    `attacker_chat` injects the attacker model call (tests, or a caller-managed client);
    otherwise a model-using technique builds it from its config on first use.
    """
    cls = get_technique(name)
    return cls(validate_config(cls, config), attacker_chat=attacker_chat)


def validate_config(cls: type[Technique[Any]], config: Any) -> TechniqueConfig:
    return _validate(cls.Config, config, what=f"technique {cls.name!r}", error=TechniqueError)


__all__ = [
    "REGISTRY",
    "TechniqueError",
    "TechniqueInfo",
    "build_technique",
    "config_options",
    "get_technique",
    "list_techniques",
    "technique",
    "validate_config",
]
