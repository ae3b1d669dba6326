"""What a call cost in USD: the config's own prices, else litellm's price map, else 0.

Why the price-map check without importing litellm: the lean HTTP path must not pay litellm's
7–12 s import just to learn that a local test model has no price.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path

from targets.config import TargetConfig

_MAP_FILE = "model_prices_and_context_window_backup.json"


def custom_cost(config: TargetConfig, prompt_tokens: int, completion_tokens: int) -> float | None:
    """Cost from the config's per-token prices (a missing one counts as 0); None without prices."""
    if not config.has_custom_prices:
        return None
    return prompt_tokens * (config.input_cost_per_token or 0.0) + completion_tokens * (
        config.output_cost_per_token or 0.0
    )


@functools.cache
def _shipped_price_keys() -> frozenset[str]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    path = Path(next(iter(spec.submodule_search_locations))) / _MAP_FILE
    if not path.is_file():
        return frozenset()
    return frozenset(json.loads(path.read_bytes()))


def _price_keys() -> frozenset[str] | dict[str, object]:
    litellm = sys.modules.get("litellm")
    if litellm is not None:  # already paid for: its live map includes register_model() entries
        return litellm.model_cost
    return _shipped_price_keys()


@functools.lru_cache(maxsize=256)
def _mapped_name(model: str) -> str | None:
    """The name litellm prices ``model`` under (``openai/x`` may be listed as ``x``), if any."""
    keys = _price_keys()
    for name in (model, model.split("/", 1)[-1]):
        if name in keys:
            return name
    return None


def http_cost(config: TargetConfig, prompt_tokens: int, completion_tokens: int) -> float:
    """Cost of a call made by the lean HTTP path (same figures as the litellm path)."""
    own = custom_cost(config, prompt_tokens, completion_tokens)
    if own is not None:
        return own
    name = _mapped_name(config.model)
    if name is None:
        return 0.0
    from targets._litellm import litellm_module

    litellm = litellm_module()
    provider = config.model.split("/", 1)[0] if "/" in config.model else None
    prompt_usd, completion_usd = litellm.cost_per_token(
        model=name,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        custom_llm_provider=provider,
    )
    return float(prompt_usd + completion_usd)
