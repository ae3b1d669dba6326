"""The optimize flow's knobs, carried in `optimizer_options` next to the optimizer's own config.

`optimizer_options` is one flat mapping (so the CLI and YAML stay simple): the keys below are
the flow's — attacker model, caps, harness, wiring — and every other key goes to the optimizer's
`Config`, which forbids unknown keys, so a typo fails either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from optimizers.library.harness import HarnessSpec
from optimizers.llm import LLMClient
from targets.config import check_key_block_name, check_key_env_name

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
    api_key_block: str | None = Field(
        None, description="NAME of a Prefect Secret block holding the key, read by the flow "
        "(as for targets: keeps the key out of workers' environments)",
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

    # Same names, same checks as a target's key; messages never echo a value.
    _env_name = field_validator("api_key_env")(check_key_env_name)
    _block_name = field_validator("api_key_block")(check_key_block_name)

    @model_validator(mode="after")
    def _one_key_source(self) -> AttackerSpec:
        if self.api_key_env is not None and self.api_key_block is not None:
            raise ValueError("give the key as api_key_env or api_key_block, not both")
        return self

    async def block_key(self) -> str | None:
        """The key from `api_key_block` (read from Prefect, cached like a target's), or None."""
        if self.api_key_block is None:
            return None
        from targets.secrets import key_from_block

        return await key_from_block(self.api_key_block)

    def client(self, max_cost: float | None, block_key: str | None = None) -> LLMClient:
        """A fresh client per goal: its spend is that goal's attacker spend. `block_key`: what
        `block_key()` returned (the flow reads it; this stays synchronous)."""
        if (block_key is None) != (self.api_key_block is None):
            raise ValueError("pass the key read from api_key_block (and only then)")
        defaults: dict[str, Any] = {}
        if self.temperature is not None:
            defaults["temperature"] = self.temperature
        if self.max_tokens is not None:
            defaults["max_tokens"] = self.max_tokens
        key = block_key
        if key is None and self.api_key_env is None and self.api_base is not None:
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
