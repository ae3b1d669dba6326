"""The `Goal` value and the error raised for bad goal files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Goal:
    """One behaviour to elicit from a target.

    Goals are identified by `id` (stable across runs) and `index` (position in its set), never by
    `text`: two goals may share a text, and results must still be attributed to each separately.
    """

    id: str
    index: int
    text: str
    category: str | None = None
    source: str | None = None
    target: str | None = None
    context: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("Goal.id must be a non-empty string")
        if self.index < 0:
            raise ValueError(f"Goal.index must be >= 0, got {self.index}")
        if not self.text or not self.text.strip():
            raise ValueError(f"Goal {self.id!r} has empty text")

    @property
    def request(self) -> str:
        """What the target is asked: the behaviour, after its context when it has one.

        A contextual behaviour ("given this text, write ...") means nothing without its context,
        so attacks and judges read this, not `text`. The layout is HarmBench's own test case.
        """
        return with_context(self.text, self.context)


def with_context(text: str, context: str | None) -> str:
    """`text` preceded by `context` and a `---` rule (HarmBench's contextual test case layout)."""
    if context is None or not context.strip():
        return text
    return f"{context.strip()}\n\n---\n\n{text}"


class GoalFileError(ValueError):
    """A goal file (or builtin set name) could not be loaded.

    Carries where the problem is so the CLI can point at it: `path`, `line` (1-based, None when the
    problem is about the whole file), `field` (the column/key involved, if any) and `reason`.
    """

    def __init__(
        self,
        path: str | Path,
        reason: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = reason
        parts = [self.path]
        if line is not None:
            parts.append(f"line {line}")
        if field:
            parts.append(f"field {field!r}")
        super().__init__(": ".join([*parts, reason]))
