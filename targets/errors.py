"""Turning a failed attempt into an ``ErrorKind`` and a message safe to store."""

from __future__ import annotations

import json
from dataclasses import dataclass

from targets.completion import ErrorKind

_CONTEXT_HINTS = ("context_length_exceeded", "maximum context length", "context window", "too many tokens")
_FILTER_HINTS = ("content_filter", "content policy", "content_policy")
_MAX_MESSAGE = 500


@dataclass(frozen=True, kw_only=True)
class AttemptError:
    """Why one attempt failed; ``retry_after_s`` comes from the server's ``Retry-After``."""

    kind: ErrorKind
    message: str
    status: int | None = None
    retry_after_s: float | None = None


def kind_for_status(status: int, message: str = "") -> ErrorKind:
    """Map an HTTP status (and, for 400s, the provider's message) to an error kind."""
    if status == 429:
        return "rate_limit"
    if status in (408, 504):  # request timeout, gateway timeout
        return "timeout"
    if status >= 500:
        return "server"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status in (400, 413, 422):
        lowered = message.lower()
        if any(h in lowered for h in _CONTEXT_HINTS) or status == 413:
            return "context_length"
        if any(h in lowered for h in _FILTER_HINTS):
            return "content_filter"
        return "bad_request"
    return "api_error"


def error_message_from_body(body: bytes, status: int) -> str:
    """The provider's error message from an OpenAI-style error body, else the start of the body."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return f"HTTP {status}: {err['message']}"[:_MAX_MESSAGE]
        if isinstance(err, str):
            return f"HTTP {status}: {err}"[:_MAX_MESSAGE]
    text = body[:_MAX_MESSAGE].decode("utf-8", "replace").strip()
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


def scrub(message: str, secret: str | None) -> str:
    """Remove the key from a message (providers sometimes echo part of it) and bound its length."""
    if secret:
        message = message.replace(secret, "***")
    return message[:_MAX_MESSAGE]
