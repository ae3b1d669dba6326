"""API keys from Prefect Secret blocks: the key reaches the call, never a file or a parameter.

Why: a key in a worker's environment is copied by Prefect's process worker into
`prefect-workspace-attempt-*/workspace.json` under the temp directory (the flow run's whole
environment), and a SIGKILLed worker never deletes it. A target that names a Secret block
(`api_key_block: openai-key`) instead keeps the key out of every environment: the flow-run
process asks the Prefect API for it when it first calls the target, and keeps it in memory
only (for `CACHE_S`, so a rotated key is picked up).
"""

from __future__ import annotations

import time
from typing import Any

from targets.config import MissingApiKeyError, TargetConfig

#: Seconds a key read from a block is reused before it is read again.
CACHE_S = 300.0
_cache: dict[str, tuple[float, str]] = {}


async def resolve_api_key(config: TargetConfig) -> str | None:
    """The key for a call: from the named Secret block, else from `api_key_env`, else None."""
    if config.api_key_block is None:
        return config.api_key()
    return await key_from_block(config.api_key_block)


async def key_from_block(name: str) -> str:
    """The key held by the Prefect Secret block `name`, cached for `CACHE_S`."""
    cached = _cache.get(name)
    if cached is not None and time.monotonic() - cached[0] < CACHE_S:
        return cached[1]
    value = await _load(name)  # two concurrent first calls may both read it: harmless
    _cache[name] = (time.monotonic(), value)
    return value


async def _load(name: str) -> str:
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    try:
        block: Secret[Any] = await Secret.aload(name)
    except (ValueError, ObjectNotFound) as exc:  # not found: Prefect raises ValueError
        raise MissingApiKeyError(f"Prefect Secret block {name!r} not found: {exc}") from None
    value = block.get()
    if not isinstance(value, str) or not value:
        raise MissingApiKeyError(f"Prefect Secret block {name!r} holds no string key")
    return value
