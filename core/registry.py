"""One generic registry: classes registered by name with a decorator, looked up with a message
that lists what would have been accepted, and configs validated with one line per problem.

Attacks, judges and optimizers each hold one `Registry` and keep their own public names
(`@technique`, `@judge`, `@optimizer`) as thin uses of it. Besides the shipped names, every
family takes a plugin two ways, with no change to siegeflow:

* `package.module:Class`: imported on lookup (a run config can name a class of the user's code);
* an entry point in the family's group (`siegeflow.attacks`, `siegeflow.judges`,
  `siegeflow.optimizers`) declared by an installed distribution: `name = "pkg.mod:Class"` under
  `[project.entry-points."siegeflow.judges"]` makes `name` a judge like the shipped ones.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

logger = logging.getLogger("siegeflow.registry")

T = TypeVar("T")
C = TypeVar("C", bound=type)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, kw_only=True)
class PluginInfo:
    """What the CLI lists for one registered technique or judge."""

    name: str
    description: str
    needs_model: bool
    options: dict[str, dict[str, Any]]  # option -> {"type", "default", "required", "description"}
    schema: dict[str, Any]  # the config's full JSON schema

    @classmethod
    def of(cls, name: str, plugin: Any) -> PluginInfo:
        """From a class with a pydantic `Config`, a `needs_model` flag and a docstring."""
        return cls(name=name, description=first_line(plugin.__doc__),
                   needs_model=bool(getattr(plugin, "needs_model", False)),
                   options=config_options(plugin.Config),
                   schema=plugin.Config.model_json_schema())


class Registry(Generic[T]):
    """Classes of one family (`kind`, e.g. "technique") by name.

    `error` is the family's own exception type, so callers catch what they always caught;
    `loader` imports the shipped entries on first lookup (keeps importing the registry cheap);
    `group` is the entry-point group plugins of installed distributions are found in;
    `base_label` names `base` in errors (the import path users know it by).
    """

    def __init__(
        self,
        kind: str,
        *,
        error: type[Exception] = ValueError,
        base: type | None = None,
        loader: Callable[[], object] | None = None,
        hint: str = "",
        group: str | None = None,
        base_label: str | None = None,
    ) -> None:
        self.kind = kind
        self.error = error
        self.group = group
        self._base = base
        self._base_label = base_label or (base.__qualname__ if base is not None else "")
        self._loader = loader
        self._hint = hint
        self._entries: dict[str, type[T]] = {}
        self._plugins: dict[str, type[T]] = {}  # resolved `module:Class` and entry-point names

    def register(self, name: str) -> Callable[[C], C]:
        """Class decorator: register under `name` and set the class's `name` attribute."""

        def decorate(cls: C) -> C:
            if self._base is not None and not (
                isinstance(cls, type) and issubclass(cls, self._base)
            ):
                raise self.error(
                    f"@{self.kind}({name!r}) must decorate a {self._base.__name__} subclass"
                )
            known = self._entries.get(name)
            if known is not None and known is not cls:
                raise self.error(f"{self.kind} {name!r} is already registered by {known}")
            # A class decorator types its argument as a plain `type` (C); the family's classes
            # carry a `name` attribute and are `type[T]`, which the base check above enforces.
            cls.name = name  # type: ignore[attr-defined]  # C is any type; see above
            self._entries[name] = cls
            return cls

        return decorate

    def get(self, name: str) -> type[T]:
        """The class registered as `name`, a plugin's entry point of that name, or the class
        at `package.module:Class`."""
        if ":" in name:
            return self._plugin(name, lambda: self._import(name))
        self._load()
        if name in self._entries:
            return self._entries[name]
        point = self._entry_point(name)
        if point is not None:
            return self._plugin(name, lambda: self._load_entry_point(point))
        known = ", ".join(sorted({*self._entries, *self._entry_point_names()})) or "(none)"
        raise self.error(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}{self._hint}")

    def items(self) -> list[tuple[str, type[T]]]:
        """Every entry, sorted by name: the registered ones and the installed plugins' entry
        points (a plugin that fails to load is logged and left out, so one broken package
        does not hide the rest)."""
        self._load()
        found = dict(self._entries)
        for name in self._entry_point_names():
            if name in found:
                continue
            try:
                found[name] = self.get(name)
            except self.error as exc:
                logger.warning("%s plugin %r left out: %s", self.kind, name, exc)
        return sorted(found.items())

    def infos(self) -> list[PluginInfo]:
        """`PluginInfo` of every entry, sorted by name."""
        return [PluginInfo.of(name, cls) for name, cls in self.items()]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(name for name, _ in self.items())

    def _load(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None
            loader()

    def _plugin(self, name: str, resolve: Callable[[], object]) -> type[T]:
        """A plugin class resolved once per name and checked against the family's base."""
        if name not in self._plugins:
            obj = resolve()
            if not isinstance(obj, type) or (
                self._base is not None and not issubclass(obj, self._base)
            ):
                article = "an" if self._base_label[:1].lower() in "aeiou" else "a"
                raise self.error(f"{name!r} is not {article} {self._base_label} subclass")
            if hasattr(self._base, "name") and not getattr(obj, "name", None):
                # Reports and errors name a plugin as it was asked for; `name` is declared by
                # the base, which mypy cannot see through the issubclass check on `type`.
                obj.name = name  # type: ignore[attr-defined]  # declared by the family's base
            self._plugins[name] = obj
        return self._plugins[name]

    def _import(self, path: str) -> object:
        module_name, _, attr = path.partition(":")
        if not module_name or not attr:
            raise self.error(
                f"{self.kind} path must look like 'package.module:Class', got {path!r}"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise self.error(
                f"cannot import {module_name!r} for {self.kind} {path!r}: {exc}"
            ) from exc
        obj: object = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise self.error(f"{module_name!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        return obj

    def _entry_points(self) -> list[EntryPoint]:
        return list(entry_points(group=self.group)) if self.group else []

    def _entry_point_names(self) -> list[str]:
        return sorted({point.name for point in self._entry_points()})

    def _entry_point(self, name: str) -> EntryPoint | None:
        return next((point for point in self._entry_points() if point.name == name), None)

    def _load_entry_point(self, point: EntryPoint) -> object:
        try:
            return point.load()
        except (ImportError, AttributeError) as exc:
            raise self.error(
                f"{self.kind} plugin {point.name!r} ({point.value}, entry point group "
                f"{self.group!r}) cannot be loaded: {exc}"
            ) from exc


def validate_config(
    model: type[M], options: Any, *, what: str, error: type[Exception] = ValueError
) -> M:
    """`options` (a mapping or an instance) as a validated `model`; `what` names the owner in
    the error ("technique 'templates'"), one clause per bad option, allowed options listed."""
    if options is None:
        options = {}
    if isinstance(options, model):
        return options
    if isinstance(options, BaseModel):
        raise error(f"{what} expects a {model.__name__} or a mapping, got {type(options).__name__}")
    if not isinstance(options, Mapping):
        raise error(f"{what}: config must be a mapping, got {type(options).__name__}")
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        raise error(f"invalid options for {what}: {explain(model, exc)}") from None


def explain(model: type[BaseModel], exc: ValidationError) -> str:
    """One clause per problem, naming the option; the allowed options, for typos."""
    problems = []
    for err in exc.errors():
        option = ".".join(str(part) for part in err["loc"]) or "(options)"
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown option {option!r}")
        else:
            problems.append(f"option {option!r}: {err['msg']}")
    allowed = ", ".join(model.model_fields) or "(none)"
    return "; ".join(problems) + f" (allowed options: {allowed})"


def config_options(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """A flat option table from a pydantic config: what the CLI lists for any plugin."""
    options = {}
    for option, info in model.model_fields.items():
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        options[option] = {
            "type": _type_name(info.annotation),
            "default": default,
            "required": info.is_required(),
            "description": info.description or "",
        }
    return options


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.replace("typing.", "")


def first_line(doc: str | None) -> str:
    """The first docstring line: a plugin's one-line description."""
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""
