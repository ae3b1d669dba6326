"""The optimize flow's knobs, carried in `optimizer_options` next to the optimizer's own config.

`optimizer_options` is one flat mapping (so the CLI and YAML stay simple): the keys below are
the flow's — attacker model, caps, harness, wiring — and every other key goes to the optimizer's
`Config`, which forbids unknown keys, so a typo fails either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from optimizers.library.harness import HarnessSpec
from optimizers.llm import LLMClient

#: litellm's OpenAI client refuses to call without a key, even a local server that needs none.
LOCAL_PLACEHOLDER_KEY = "EMPTY"


class AttackerSpec(BaseModel):
    """The attacker model the optimizer may call (through a locked, budgeted LLMClient)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    model: str = Field(min_length=1, description="a litellm model string")
    api_base: str | None = None
    api_key_env: str | None = Field(
        None, description="NAME of the environment variable with the key"
    )
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="default; optimizers may override"
    )
    max_tokens: int | None = Field(None, ge=1)
    input_cost_per_token: float | None = Field(None, ge=0.0)
    output_cost_per_token: float | None = Field(None, ge=0.0)
    timeout_s: float = Field(60.0, gt=0.0)
    max_retries: int = Field(3, ge=0, le=20)
    backoff_base_s: float = Field(0.5, ge=0.0)
    backoff_max_s: float = Field(8.0, ge=0.0)

    def client(self, max_cost: float | None) -> LLMClient:
        """A fresh client per goal: its spend is that goal's attacker spend."""
        defaults: dict[str, Any] = {}
        if self.temperature is not None:
            defaults["temperature"] = self.temperature
        if self.max_tokens is not None:
            defaults["max_tokens"] = self.max_tokens
        key = None
        if self.api_key_env is None and self.api_base is not None:
            key = LOCAL_PLACEHOLDER_KEY
        return LLMClient(
            model=self.model,
            api_base=self.api_base,
            api_key=key,
            api_key_env=self.api_key_env,
            max_cost=max_cost,
            input_cost_per_token=self.input_cost_per_token,
            output_cost_per_token=self.output_cost_per_token,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            timeout_s=self.timeout_s,
            defaults=defaults,
        )


class OptimizeOptions(BaseModel):
    """Flow-level options of one optimize run (the optimizer's own options are separate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attacker: AttackerSpec | None = None
    max_runs: int = Field(20, ge=1, le=100_000, description="Runs per goal, at most")
    max_cost_usd: float | None = Field(None, gt=0, description="Attacker spend per goal, at most")
    time_limit_s: float | None = Field(None, gt=0, description="Per goal; checked between runs")
    stop_on_success: bool = Field(True, description="Stop a goal at its first successful run")
    harness: HarnessSpec = Field(default_factory=HarnessSpec)
    wiring: Literal["gather", "threads"] = Field(
        "gather",
        description="Both tasks awaited in the flow's loop, or submitted to worker threads",
    )
    send_timeout_s: float = Field(300.0, gt=0, description="Longest wait for one optimizer answer")
    shutdown_timeout_s: float = Field(30.0, gt=0, description="Grace for the optimizer to stop")

    @classmethod
    def split(cls, options: Mapping[str, Any] | None) -> tuple[OptimizeOptions, dict[str, Any]]:
        """(flow options, the optimizer's own options) from one flat mapping."""
        options = dict(options or {})
        mine = {k: options.pop(k) for k in list(options) if k in cls.model_fields}
        return cls.model_validate(mine), options
