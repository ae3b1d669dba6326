"""What a call cost in USD: the config's own prices, else litellm's price map, else 0.

The litellm path asks ``litellm.completion_cost``. The lean HTTP path reads the same price map
without importing litellm (a 7–12 s import that would block the event loop mid-run) and applies
its per-token prices, which is what litellm computes for a chat model; only above a tiered-price
threshold (e.g. ``input_cost_per_token_above_200k_tokens``) does it defer to litellm itself.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

from targets.config import TargetConfig

_MAP_FILE = "model_prices_and_context_window_backup.json"
_TIER = re.compile(r"_above_(\d+)k_tokens$")


def custom_cost(config: TargetConfig, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Cost from the config's per-token prices (a missing one counts as 0); None without prices."""
    if not config.has_custom_prices:
        return None
    return prompt_tokens * (config.input_cost_per_token or 0.0) + completion_tokens * (
        config.output_cost_per_token or 0.0
    )


@functools.cache
def _shipped_map() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / _MAP_FILE
    if not path.is_file():
        return {}
    prices: dict[str, Any] = json.loads(path.read_bytes())
    return prices


def _price_map() -> dict[str, Any]:
    litellm = sys.modules.get("litellm")
    if litellm is not None:  # already imported: its live map includes register_model() entries
        prices: dict[str, Any] = litellm.model_cost
        return prices
    return _shipped_map()


@functools.lru_cache(maxsize=256)
def _entry(model: str) -> tuple[str, float, float, int | None] | None:
    """(priced name, input $/token, output $/token, lowest tier threshold) for ``model``, if priced."""
    prices = _price_map()
    for name in (model, model.split("/", 1)[-1]):
        entry = prices.get(name)
        if isinstance(entry, dict) and ("input_cost_per_token" in entry or "output_cost_per_token" in entry):
            tiers = [int(m.group(1)) * 1000 for key in entry if (m := _TIER.search(key))]
            return (
                name,
                float(entry.get("input_cost_per_token") or 0.0),
                float(entry.get("output_cost_per_token") or 0.0),
                min(tiers) if tiers else None,
            )
    return None


def http_cost(config: TargetConfig, prompt_tokens: int, completion_tokens: int) -> float:
    """Cost of a call made by the lean HTTP path (same figures as the litellm path)."""
    own = custom_cost(config, prompt_tokens, completion_tokens)
    if own is not None:
        return own
    entry = _entry(config.model)
    if entry is None:
        return 0.0  # a model nobody priced, e.g. a local server: free as far as we know
    name, per_input, per_output, tier_threshold = entry
    if tier_threshold is not None and prompt_tokens > tier_threshold:
        from targets._litellm import litellm_module

        provider = config.model.split("/", 1)[0] if "/" in config.model else None
        prompt_usd, completion_usd = litellm_module().cost_per_token(
            model=name, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, custom_llm_provider=provider
        )
        return float(prompt_usd + completion_usd)
    return prompt_tokens * per_input + completion_tokens * per_output
