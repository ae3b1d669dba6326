"""Resolve a goal-set reference (file path, `builtin:NAME`, or a preset such as
`harmbench:standard`) into goals.

Builtin sets ship as package data and are read through `importlib.resources`, so they load from
an installed wheel as well as from a checkout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from goals.loaders import (
    DEFAULT_MAX_GOAL_CHARS,
    GoalFileSpec,
    load_goal_file,
    read_csv_text,
    records_to_goals,
)
from goals.model import Goal, GoalFileError
from goals.presets import is_preset_ref, load_preset

BUILTIN_PREFIX = "builtin:"
DEFAULT_GOAL_SET = "builtin:jbb-mini"


@dataclass(frozen=True, kw_only=True)
class BuiltinSet:
    """A goal set shipped with siegeflow (see goals/data/NOTICE for attribution)."""

    name: str
    filename: str
    description: str
    source: str
    license: str

    @property
    def ref(self) -> str:
        return f"{BUILTIN_PREFIX}{self.name}"


_BUILTIN_SETS: dict[str, BuiltinSet] = {
    "jbb-mini": BuiltinSet(
        name="jbb-mini",
        filename="jbb_mini.csv",
        description="30 JBB-Behaviors harmful behaviours, 3 in each of its 10 categories",
        source="JailbreakBench/JBB-Behaviors (Chao et al., NeurIPS 2024)",
        license="MIT",
    ),
}


def list_builtin_sets() -> list[BuiltinSet]:
    """The shipped sets, for `siegeflow goals` style listings."""
    return list(_BUILTIN_SETS.values())


def load_builtin(name: str) -> list[Goal]:
    """Load a shipped set by bare name (`jbb-mini`) or reference (`builtin:jbb-mini`)."""
    bare = name.removeprefix(BUILTIN_PREFIX)
    info = _BUILTIN_SETS.get(bare)
    if info is None:
        known = ", ".join(s.ref for s in _BUILTIN_SETS.values())
        raise GoalFileError(f"{BUILTIN_PREFIX}{bare}", f"unknown builtin goal set; known: {known}")
    text = resources.files("goals").joinpath("data", info.filename).read_text(encoding="utf-8")
    spec = GoalFileSpec(path=info.ref, id_field="id", category_field="category",
                        target_field="target", source_field="source", set_name=info.ref)
    return records_to_goals(read_csv_text(info.ref, text, spec), spec)


def load_goals(
    path_or_name: str | Path | GoalFileSpec,
    mapping: Mapping[str, str | None] | None = None,
    *,
    format: str | None = None,
    search: str | Path | None = None,
    max_chars: int | None = DEFAULT_MAX_GOAL_CHARS,
) -> list[Goal]:
    """Load a goal set: a `GoalFileSpec`, a file path, `builtin:NAME` or a preset name.

    A preset's published file is looked for in `search` (a folder), then in the cache, then
    downloaded (see `goals.presets`).

    `mapping` renames columns onto Goal fields, keys `text`, `id`, `category`, `target`,
    `source` (e.g. `{"text": "Behavior", "id": "BehaviorID"}`); it cannot apply to builtin sets,
    whose columns are fixed. A goal text longer than `max_chars` is an error (None: no limit).
    Raises `GoalFileError` naming file, line and field.
    """
    if isinstance(path_or_name, GoalFileSpec):
        spec = path_or_name
    elif isinstance(path_or_name, str) and path_or_name.startswith(BUILTIN_PREFIX):
        if mapping or format:
            raise GoalFileError(path_or_name, "builtin sets take no column mapping or format")
        return load_builtin(path_or_name)
    elif is_preset_ref(path_or_name):
        if mapping or format:
            raise GoalFileError(str(path_or_name), "presets take no column mapping or format")
        return load_preset(str(path_or_name), search=search)
    else:
        spec = GoalFileSpec(path=path_or_name)
    if format is not None:
        spec = replace(spec, format=format)
    if mapping:
        spec = spec.with_mapping(mapping)
    if max_chars is not None:
        spec = replace(spec, max_text_chars=max_chars)
    return load_goal_file(spec)
