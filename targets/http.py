"""The lean path for OpenAI-compatible endpoints: one keep-alive aiohttp session per event loop.

Why: litellm plus the OpenAI SDK cost ~4–6 ms of CPU per call here, and attack flows budget
≤ 3 ms. Why aiohttp and not httpx: measured on this 2-core box at 32 concurrent calls, an
``httpx.AsyncClient`` alone costs 2.7 ms CPU per request (4.8 ms with a 128-connection pool:
httpcore re-checks every pooled connection on each request), aiohttp 0.3 ms. aiohttp is already
installed as a litellm dependency. ``targets.chat`` owns retries, cost and the ``Completion``,
so this path and the litellm one give the same results.

Sessions are per event loop (a session is bound to the loop that opened its connections, and
Prefect may run tasks on several loops). Each is closed when its loop shuts down its async
generators (``asyncio.run`` does), or by ``aclose_sessions()``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from targets.completion import ToolCall
from targets.config import TargetConfig
from targets.errors import AttemptError, error_message_from_body, kind_for_status, scrub
from targets.retry import parse_retry_after

_pool_size = 128
_sessions: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, AsyncGenerator[None, None]]
] = weakref.WeakKeyDictionary()
_JSON_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate"}


def configure_pool(max_connections: int) -> None:
    """Size the connection pool of sessions created from now on (≥ the calls in flight at once)."""
    global _pool_size
    if max_connections < 1:
        raise ValueError("max_connections must be >= 1")
    _pool_size = max_connections


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verified TLS context for all sessions: building one costs ~0.3 s of CPU."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


@functools.lru_cache(maxsize=64)
def _proxy_for(api_base: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """The proxy (and its auth) HTTP(S)_PROXY / NO_PROXY give this endpoint, looked up once.

    Same rules as aiohttp's ``trust_env``, which would repeat the lookup on every request with
    two thread hops and a ~/.netrc read each time.
    """
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        proxy, auth = get_env_proxy_for_url(URL(api_base))
    except LookupError:  # no proxy configured, or NO_PROXY covers the host
        return None, None
    return str(proxy), auth


async def _closer(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    # Parked at `yield` for the loop's lifetime; the loop's shutdown_asyncgens() runs `finally`.
    try:
        yield
    finally:
        await session.close()


async def _session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    entry = _sessions.get(loop)
    if entry is not None and not entry[0].closed:
        return entry[0]
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=_pool_size, limit_per_host=0, ssl=_ssl_context()),
        trust_env=False,  # proxies come from _proxy_for()
        json_serialize=json.dumps,
    )
    closer = _closer(session)
    await closer.__anext__()
    _sessions[loop] = (session, closer)
    return session


async def aclose_sessions() -> None:
    """Close this loop's session now (e.g. before a loop that will not run shutdown_asyncgens ends)."""
    entry = _sessions.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry[1].aclose()


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
    body: dict[str, Any] = {"model": _wire_model(config.model), "messages": messages}
    if tools:
        body["tools"] = tools
    content, error = await _post(config, "/chat/completions", body, params, api_key)
    return (None, error) if content is None else _parse(content, api_key)


async def text_attempt(
    config: TargetConfig, prompt: str, params: dict[str, Any], api_key: str | None
) -> tuple[dict[str, Any] | None, AttemptError | None]:
    """One POST to ``{api_base}/completions`` (raw prompt, no chat template)."""
    body: dict[str, Any] = {"model": _wire_model(config.model), "prompt": prompt}
    content, error = await _post(config, "/completions", body, params, api_key)
    return (None, error) if content is None else _parse_text(content, api_key)


async def _post(
    config: TargetConfig,
    path: str,
    body: dict[str, Any],
    params: dict[str, Any],
    api_key: str | None,
) -> tuple[bytes | None, AttemptError | None]:
    """POST ``body`` (plus the sampling parameters) → (200 body, None) or (None, error)."""
    assert config.api_base is not None  # guaranteed by TargetConfig validation / resolved_transport
    for name in ("temperature", "max_tokens", "seed"):
        if params.get(name) is not None:
            body[name] = params[name]
    headers = _JSON_HEADERS
    if api_key:
        headers = {**_JSON_HEADERS, "Authorization": f"Bearer {api_key}"}
    timeout_s = params["timeout_s"]
    # Per attempt: connecting and each wait for data are bounded; queueing for a pooled
    # connection is not (that is our own concurrency, not the target being slow).
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
    session = await _session()
    proxy, proxy_auth = _proxy_for(config.api_base)
    try:
        async with session.post(
            config.api_base + path,
            data=json.dumps(body).encode(),
            headers=headers,
            timeout=timeout,
            proxy=proxy,
            proxy_auth=proxy_auth,
        ) as response:
            content = await response.read()
            status = response.status
            retry_after = response.headers.get("Retry-After")
    except TimeoutError as exc:  # includes aiohttp's ServerTimeoutError
        return None, AttemptError(kind="timeout", message=f"timed out after {timeout_s:g}s ({type(exc).__name__})")
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        return None, AttemptError(kind="bad_request", message=scrub(f"bad api_base: {exc}", api_key))
    except aiohttp.ClientError as exc:
        return None, AttemptError(kind="connection", message=scrub(f"{type(exc).__name__}: {exc}", api_key))
    if status != 200:
        message = scrub(error_message_from_body(content, status), api_key)
        return None, AttemptError(
            kind=kind_for_status(status, message),
            message=message,
            status=status,
            retry_after_s=parse_retry_after(retry_after),
        )
    return content, None


def _parse_text(content: bytes, api_key: str | None) -> tuple[dict[str, Any] | None, AttemptError | None]:
    try:
        data = json.loads(content)
        choice = data["choices"][0]
        text = choice["text"]
        if not isinstance(text, str):
            raise TypeError(f"choices[0].text is {type(text).__name__}")
        usage = data.get("usage") or {}
        result = {
            "text": text,
            "finish_reason": choice.get("finish_reason"),
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
        }
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        snippet = content[:200].decode("utf-8", "replace")
        return None, AttemptError(
            kind="invalid_response",
            message=scrub(f"not a text completion ({type(exc).__name__}: {exc}): {snippet!r}", api_key),
            status=200,
        )
    return result, None


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
