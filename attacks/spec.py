"""`AttackSpec`: the config form of one technique, as a run document and a flow parameter give it.

It lives with the techniques (not with the flows) so tasks and flows both read it without a
task importing a flow.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AttackSpec(BaseModel):
    """Which technique to run and its options (validated by the technique's own config)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("baseline", description="Registered technique: see `siegeflow attacks`.")
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_technique(self) -> AttackSpec:
        """An unknown name or a typo in an option fails here, before a run is recorded."""
        from attacks.registry import get_technique, validate_config

        validate_config(get_technique(self.name), self.options)
        return self
