"""`JudgePanelSpec`: the judges of a run and how their verdicts combine, as a run document and a
flow parameter give it. It lives with the judges so tasks and flows both read it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from judges.registry import JudgeSpec


class JudgePanelSpec(BaseModel):
    """The judges of a run and how their verdicts combine into one success decision."""

    model_config = ConfigDict(extra="forbid")

    judges: list[JudgeSpec] = Field(default_factory=lambda: [JudgeSpec(name="refusal")])
    rule: Literal["any", "majority", "all"] = Field(
        "majority", description="How verdicts combine; a majority tie is not a success."
    )
    success_threshold: float = Field(0.5, ge=0.0, le=1.0)

    @field_validator("judges")
    @classmethod
    def _at_least_one(cls, value: list[JudgeSpec]) -> list[JudgeSpec]:
        if not value:
            raise ValueError("at least one judge is required")
        return value

    @property
    def judge_keys(self) -> list[str]:
        """The names the panel's verdicts are recorded under, in panel order.

        (Not `keys`: Prefect copies parameters with `dict(model)`, which would call it.)"""
        return [spec.key for spec in self.judges]
