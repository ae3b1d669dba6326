"""The lean path for OpenAI-compatible endpoints: one keep-alive ``httpx.AsyncClient`` per loop.

Why: litellm plus the OpenAI SDK cost ~4–5 ms of CPU per call here; a red-teaming run makes
thousands of calls, and attack flows budget ≤ 3 ms. Posting the JSON ourselves keeps the same
retry, cost and ``Completion`` semantics (``targets.chat`` owns those) at a fraction of the CPU.

Clients are per event loop (an ``httpx.AsyncClient`` is bound to the loop that opened its
connections; Prefect may run tasks on several loops) and live as long as their loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import weakref
from typing import Any

import httpx

from targets.completion import ToolCall
from targets.config import TargetConfig
from targets.errors import AttemptError, error_message_from_body, kind_for_status, scrub
from targets.retry import parse_retry_after

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()
_pool_size = 128


def configure_pool(max_connections: int) -> None:
    """Size the connection pool of clients created from now on (≥ the calls in flight at once)."""
    global _pool_size
    if max_connections < 1:
        raise ValueError("max_connections must be >= 1")
    _pool_size = max_connections


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verified TLS context for all clients: building one costs ~0.3 s of CPU."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=_pool_size, max_keepalive_connections=_pool_size, keepalive_expiry=30.0
            ),
            timeout=None,
            verify=_ssl_context(),
            trust_env=True,  # honour HTTP(S)_PROXY / NO_PROXY like litellm does
        )
        _clients[loop] = client
    return client


async def aclose_clients() -> None:
    """Close this loop's client (call before the loop ends to release sockets promptly)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def _wire_model(model: str) -> str:
    return model.split("/", 1)[1] if model.startswith("openai/") else model


async def attempt(
    config: TargetConfig,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    params: dict[str, Any],
    api_key: str | None,
) -> tuple[dict[str, Any] | None, AttemptError | None]:
    """One POST to ``{api_base}/chat/completions`` → (parsed result, None) or (None, error)."""
    assert config.api_base is not None  # guaranteed by TargetConfig validation / resolved_transport
    body: dict[str, Any] = {"model": _wire_model(config.model), "messages": messages}
    for name in ("temperature", "max_tokens", "seed"):
        if params.get(name) is not None:
            body[name] = params[name]
    if tools:
        body["tools"] = tools
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    timeout = params["timeout_s"]
    try:
        response = await _client().post(
            config.api_base + "/chat/completions",
            content=json.dumps(body).encode(),
            headers=headers,
            timeout=httpx.Timeout(timeout, pool=None),
        )
    except httpx.TimeoutException as exc:
        return None, AttemptError(kind="timeout", message=f"timed out after {timeout:g}s ({type(exc).__name__})")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return None, AttemptError(kind="bad_request", message=scrub(f"bad api_base: {exc}", api_key))
    except httpx.TransportError as exc:
        return None, AttemptError(kind="connection", message=scrub(f"{type(exc).__name__}: {exc}", api_key))
    content = response.content
    status = response.status_code
    if status != 200:
        message = scrub(error_message_from_body(content, status), api_key)
        return None, AttemptError(
            kind=kind_for_status(status, message),
            message=message,
            status=status,
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        )
    return _parse(content, api_key)


def _parse(content: bytes, api_key: str | None) -> tuple[dict[str, Any] | None, AttemptError | None]:
    try:
        data = json.loads(content)
        choice = data["choices"][0]
        message = choice["message"]
        calls = tuple(
            ToolCall(
                name=c["function"]["name"],
                arguments=c["function"].get("arguments") or "{}",
                id=c.get("id"),
            )
            for c in message.get("tool_calls") or ()
        )
        usage = data.get("usage") or {}
        result = {
            "text": message.get("content"),
            "tool_calls": calls,
            "finish_reason": choice.get("finish_reason"),
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
        }
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        snippet = content[:200].decode("utf-8", "replace")
        return None, AttemptError(
            kind="invalid_response",
            message=scrub(f"not a chat completion ({type(exc).__name__}: {exc}): {snippet!r}", api_key),
            status=200,
        )
    return result, None
