"""`GoalsSpec`: where a run's goals come from, as a run document and a flow parameter give it.
It lives with the goals so tasks, flows and the CLI all read it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from goals.loaders import DEFAULT_MAX_GOAL_CHARS
from goals.model import Goal
from goals.sample import Selection, stratified_sample
from goals.sets import DEFAULT_GOAL_SET, load_goals


class GoalsSpec(BaseModel):
    """Where the goals come from: a builtin set (`builtin:NAME`), a benchmark preset
    (`harmbench:standard`, see `siegeflow goals`) or a CSV/JSONL/YAML file."""

    model_config = ConfigDict(extra="forbid")

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
    sample: int | None = Field(
        None, ge=1, description="A random sample of N goals, stratified by category (--seed)"
    )
    seed: int = Field(0, description="The sample's random seed (same seed, same goals)")
    max_goal_chars: int = Field(
        DEFAULT_MAX_GOAL_CHARS, ge=1, description="A longer goal text is an input error"
    )

    def load(self) -> list[Goal]:
        return self.load_selected()[0]

    def load_selected(self) -> tuple[list[Goal], Selection]:
        """The goals and which part of the set they are (for the report's "30 of 200")."""
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
        total, how = len(goals), "all"
        if self.sample is not None and self.sample < len(goals):
            goals, how = stratified_sample(goals, self.sample, self.seed), "sample"
        if self.limit is not None and self.limit < len(goals):
            goals, how = goals[: self.limit], "first" if how == "all" else how
        return goals, Selection(source=self.source, total=total, used=len(goals), how=how,
                                seed=self.seed if how == "sample" else None,
                                categories=tuple(self.categories or ()))
