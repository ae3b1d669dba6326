"""Goals: the behaviours a red-teaming run tries to elicit, and the loaders for goal sets.

Load a set with `load_goals("goals.csv", mapping={"text": "prompt"})` or
`load_goals("builtin:jbb-mini")`; every bad file raises `GoalFileError` with file, line and field.
"""

from goals.loaders import DEFAULT_MAX_GOAL_CHARS, GoalFileSpec, load_goal_file
from goals.model import Goal, GoalFileError
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
    "Goal",
    "GoalFileError",
    "GoalFileSpec",
    "list_builtin_sets",
    "load_builtin",
    "load_goal_file",
    "load_goals",
]
