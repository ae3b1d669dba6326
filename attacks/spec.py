"""`AttackSpec`: the config form of one technique, as a run document and a flow parameter give it.

It lives with the techniques (not with the flows) so tasks and flows both read it without a
task importing a flow.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AttackSpec(BaseModel):
    """Which technique to run and its options (validated by the technique's own config)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("baseline", description="Registered technique: see `siegeflow attacks`.")
    options: dict[str, Any] = Field(default_factory=dict)
