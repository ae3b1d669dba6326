"""The demo's target: SmolLM2-135M on llama.cpp behind the embedding guardrail.

Why the guardrail: measured here, SmolLM2-135M alone refused 0 of 37 plain harmful requests, so a
demo against it would show every goal broken. Behind the guardrail, plain requests are mostly
stopped and obfuscated or wrapped ones partly get through — which attacks do is measured, never
decided in advance.
"""

from __future__ import annotations

from targets.config import GuardrailConfig, TargetConfig
from targets.local import SMOLLM2


def embedded_target(*, max_tokens: int = 80, guardrail: GuardrailConfig | None = None) -> TargetConfig:
    """The demo ``TargetConfig``: local, free, deterministic (temperature 0, fixed seed)."""
    return TargetConfig(
        model=SMOLLM2,
        temperature=0.0,
        max_tokens=max_tokens,
        timeout_s=120.0,
        max_retries=0,  # a local model does not rate-limit; a failure will fail again
        input_cost_per_token=0.0,
        output_cost_per_token=0.0,
        guardrail=guardrail if guardrail is not None else GuardrailConfig(),
    )
