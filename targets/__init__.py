"""Targets: how siegeflow reaches a model (``TargetConfig``, ``chat()``, ``Completion``).

Importing this package is cheap: litellm, llama.cpp and the guardrail's encoder load on first use.
"""

from targets import _env  # noqa: F401  (first: environment before any third-party import)
from targets.chat import chat
from targets.completion import RETRYABLE_KINDS, Completion, ErrorKind, ToolCall
from targets.config import GuardrailConfig, MissingApiKeyError, TargetConfig
from targets.ratelimit import RateLimit

__all__ = [
    "RETRYABLE_KINDS",
    "Completion",
    "ErrorKind",
    "GuardrailConfig",
    "MissingApiKeyError",
    "RateLimit",
    "TargetConfig",
    "ToolCall",
    "chat",
    "embedded_target",
]


def __getattr__(name: str) -> object:
    if name == "embedded_target":
        from targets.embedded import embedded_target

        return embedded_target
    raise AttributeError(f"module 'targets' has no attribute {name!r}")
