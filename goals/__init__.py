"""Goals: the behaviours a red-teaming run tries to elicit, and the loaders for goal sets.

Load a set with `load_goals("goals.csv", mapping={"text": "prompt"})` or
`load_goals("builtin:jbb-mini")`, or a public benchmark by preset name
(`load_goals("harmbench:standard", search="data/")`, see `goals.presets`); every bad file raises
`GoalFileError` with file, line and field.
"""

from goals.fetch import DataFile, DataFileUnavailable
from goals.loaders import DEFAULT_MAX_GOAL_CHARS, GoalFileSpec, load_goal_file
from goals.model import Goal, GoalFileError, with_context
from goals.presets import (
    DEFAULT_SUBSET,
    PRESETS,
    Preset,
    PresetStatus,
    benign_goals_warning,
    get_preset,
    is_preset_ref,
    list_presets,
    load_preset,
    preset_status,
)
from goals.sample import Selection, stratified_sample
from goals.sets import (
    BUILTIN_PREFIX,
    DEFAULT_GOAL_SET,
    BuiltinSet,
    list_builtin_sets,
    load_builtin,
    load_goals,
)

__all__ = [
    "BUILTIN_PREFIX",
    "DEFAULT_GOAL_SET",
    "DEFAULT_MAX_GOAL_CHARS",
    "BuiltinSet",
    "DataFile",
    "DataFileUnavailable",
    "DEFAULT_SUBSET",
    "PRESETS",
    "Selection",
    "benign_goals_warning",
    "stratified_sample",
    "Preset",
    "PresetStatus",
    "get_preset",
    "is_preset_ref",
    "list_presets",
    "load_preset",
    "preset_status",
    "with_context",
    "Goal",
    "GoalFileError",
    "GoalFileSpec",
    "list_builtin_sets",
    "load_builtin",
    "load_goal_file",
    "load_goals",
]
