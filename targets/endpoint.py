"""The HTTP-app transport: one request per turn to your own endpoint (`TargetConfig.endpoint`).

`targets.chat` owns retries, backoff, rate limits and the `Completion`; this module renders the
request, reads the answer, and keeps each conversation's server session (id and cookies) so
that turn 2 of a multi-turn attack reaches the same session as turn 1. A conversation is
recognised by its text so far: the state stored after a reply is found again when the next
call carries that reply followed by a new user message. Each app session's progress is tracked
too: a conversation that continues from an earlier point than its session has reached (a
rewound turn, a second branch) goes to a fresh session with the kept user messages re-sent.

Its own aiohttp session (not `targets.http`'s): cookies are kept per conversation, never in a
shared jar where one attempt's session cookie would leak into another's.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from targets.completion import ToolCall
from targets.config import TargetConfig
from targets.endpoint_config import (
    CURRENT_GOAL,
    HEADER_ONLY,
    PLACEHOLDERS,
    EndpointConfig,
    follow,
    parse_json_path,
    parse_template,
    render,
    render_body,
)
from targets.errors import AttemptError, kind_for_status, scrub
from targets.http import _proxy_for, _ssl_context
from targets.retry import parse_retry_after

#: Conversations whose server session is remembered, at most (oldest forgotten first).
MAX_SESSIONS = 20_000
_SNIPPET = 200
_TURN_STATE = "_endpoint_conversation"


@dataclass(kw_only=True)
class _Conversation:
    session_id: str
    cookies: dict[str, str] = field(default_factory=dict)


_conversations: OrderedDict[str, _Conversation] = OrderedDict()
#: How many user/assistant messages each app session holds (by session id), as siegeflow sent
#: them: a conversation continues a session only from where the session is. A rewound turn (or
#: a second branch from the same point) finds the session further on, and starts a fresh one
#: with the kept history re-sent (`_replay`) — unless the app gets the whole `{conversation}`.
_held: OrderedDict[str, int] = OrderedDict()
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, AsyncGenerator[None, None]]
] = weakref.WeakKeyDictionary()


async def _client() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    entry = _clients.get(loop)
    if entry is not None and not entry[0].closed:
        return entry[0]
    from targets.http import _closer, _pool_size

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=_pool_size, limit_per_host=0, ssl=_ssl_context()),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,  # proxies from targets.http._proxy_for: looked up once per host
    )
    closer = _closer(session)
    await closer.__anext__()
    _clients[loop] = (session, closer)
    return session


@functools.lru_cache(maxsize=256)
def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _key(url: str, turns: list[tuple[str, str]]) -> str:
    return hashlib.sha256(json.dumps([url, turns]).encode()).hexdigest()


def _turns(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """A conversation as (role, text) of its user and assistant messages: what both sides saw."""
    out = []
    for m in messages:
        if m.get("role") in ("user", "assistant"):
            content = m.get("content")
            if not isinstance(content, str):
                content = json.dumps(content)
            out.append((str(m["role"]), content))
    return out


def _system(messages: list[dict[str, Any]]) -> str:
    return next((str(m.get("content") or "") for m in messages if m.get("role") == "system"), "")


async def attempt(
    config: TargetConfig,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    params: dict[str, Any],
    api_key: str | None,
) -> tuple[dict[str, Any] | None, AttemptError | None]:
    """One request to the app → (parsed result, None) or (None, error with its cause)."""
    endpoint = config.endpoint
    assert endpoint is not None  # chat() dispatches here only for endpoint targets
    turns = _turns(messages)
    system, timeout_s = _system(messages), params["timeout_s"]
    # One chat() call's retries share its `params`: a retried turn keeps its session.
    conv = params.get(_TURN_STATE)
    if not isinstance(conv, _Conversation):
        kept = turns[:-1]
        prior = _conversations.get(_key(endpoint.url, kept)) if kept else None
        if prior is None:
            conv = _Conversation(session_id=uuid.uuid4().hex)
        elif endpoint.sends_history() or _held.get(prior.session_id, len(kept)) == len(kept):
            conv = _Conversation(session_id=prior.session_id, cookies=dict(prior.cookies))
        else:
            # The app's session went on past the kept history (the attacker dropped a refused
            # turn, or another branch continued it): a fresh session, the kept turns re-sent.
            conv = _Conversation(session_id=uuid.uuid4().hex)
            error = await _replay(endpoint, conv, kept, system, api_key, timeout_s)
            if error is not None:
                return None, error
        params[_TURN_STATE] = conv
        _hold(conv.session_id, len(turns))  # claimed before any await: no sibling shares it
    outcome, error = await _send(endpoint, _values(turns, conv, system), api_key, conv, timeout_s)
    if outcome is None:
        return None, error
    text, calls, data, set_cookies, header_session = outcome
    _remember(endpoint, conv, turns, text, set_cookies, header_session, data)
    return {"text": text, "tool_calls": calls, "finish_reason": "stop",
            "prompt_tokens": 0, "completion_tokens": 0}, None


def _values(turns: list[tuple[str, str]], conv: _Conversation, system: str) -> dict[str, Any]:
    """The placeholders' values for the conversation `turns` (ending with a user message)."""
    return {
        "prompt": next((t for r, t in reversed(turns) if r == "user"), ""),
        "conversation": [{"role": r, "content": t} for r, t in turns],
        "session_id": conv.session_id,
        "goal_id": CURRENT_GOAL.get() or "",
        "system_prompt": system,
        "turn": sum(1 for r, _ in turns if r == "user"),
    }


async def _replay(endpoint: EndpointConfig, conv: _Conversation, kept: list[tuple[str, str]],
                  system: str, api_key: str | None, timeout_s: float) -> AttemptError | None:
    """Re-send the kept conversation's user messages, one request each, to the fresh session
    `conv`, so the app's memory holds the kept history again (its answers may differ from the
    kept ones: they are not what the attacker saw, and are not recorded)."""
    users = [i for i, (role, _) in enumerate(kept) if role == "user"]
    for n, i in enumerate(users, 1):
        prefix = kept[: i + 1]
        outcome, error = await _send(endpoint, _values(prefix, conv, system), api_key, conv,
                                     timeout_s)
        if outcome is None:
            assert error is not None
            return replace(error, message=f"re-sending the kept history to a fresh session "
                           f"(a turn was rewound), turn {n} of {len(users)}: {error.message}")
        text, _, data, set_cookies, header_session = outcome
        _remember(endpoint, conv, prefix, text, set_cookies, header_session, data, store=False)
    return None


_Sent = tuple[str, tuple[ToolCall, ...], Any, dict[str, str], str | None]


async def _send(endpoint: EndpointConfig, values: dict[str, Any], api_key: str | None,
                conv: _Conversation, timeout_s: float
                ) -> tuple[_Sent | None, AttemptError | None]:
    """One request → ((text, tool calls, parsed body, cookies set, header session), None)."""
    request = _request(endpoint, values, api_key, conv)
    session = await _client()
    proxy, proxy_auth = _proxy_for(_origin(endpoint.url))
    try:
        async with session.request(
            endpoint.method, request["url"], params=request["query"] or None,
            headers=request["headers"], data=request["data"],
            timeout=aiohttp.ClientTimeout(total=timeout_s), proxy=proxy, proxy_auth=proxy_auth,
        ) as response:
            content = await response.read()
            status = response.status
            content_type = response.headers.get("Content-Type", "")
            retry_after = response.headers.get("Retry-After")
            set_cookies = {name: morsel.value for name, morsel in response.cookies.items()}
            header_session = (response.headers.get(endpoint.session.name or "")
                              if endpoint.session.source == "header" else None)
    except TimeoutError as exc:
        return None, AttemptError(kind="timeout",
                                  message=f"timed out after {timeout_s:g}s ({type(exc).__name__})")
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        return None, AttemptError(kind="bad_request", message=scrub(f"bad url: {exc}", api_key))
    except aiohttp.ClientError as exc:
        return None, AttemptError(kind="connection",
                                  message=scrub(f"{type(exc).__name__}: {exc}", api_key))
    if not 200 <= status < 300:
        message = scrub(f"HTTP {status}: {_snippet(content)}", api_key)
        return None, AttemptError(kind=kind_for_status(status, message), message=message,
                                  status=status, retry_after_s=parse_retry_after(retry_after))
    try:
        text, data = _extract(endpoint, content, content_type)
        calls = _tool_calls(endpoint, data)
    except (ValueError, LookupError, TypeError) as exc:
        return None, AttemptError(
            kind="invalid_response", status=status,
            message=scrub(f"HTTP {status}, unreadable answer ({exc}): {_snippet(content)}", api_key),
        )
    return (text, calls, data, set_cookies, header_session), None


def _request(endpoint: EndpointConfig, values: dict[str, Any], api_key: str | None,
             conv: _Conversation) -> dict[str, Any]:
    header_values = {**values, "api_key": api_key or ""}
    headers = {name: str(render(parse_template(t, PLACEHOLDERS | HEADER_ONLY), header_values))
               for name, t in endpoint.headers.items()}
    if api_key and not endpoint.uses_api_key():
        headers.setdefault("Authorization", f"Bearer {api_key}")
    if conv.cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in conv.cookies.items())
    url = render(parse_template(endpoint.url, PLACEHOLDERS), _texts(values))
    query = {k: render(parse_template(t, PLACEHOLDERS), _texts(values))
             for k, t in endpoint.query.items()}
    data: bytes | aiohttp.FormData | None = None
    if endpoint.body is not None:
        body = render_body(endpoint.body, values)
        if endpoint.body_format == "json":
            data = json.dumps(body, ensure_ascii=False).encode()
            headers.setdefault("Content-Type", "application/json")
        elif endpoint.body_format == "form":
            data = aiohttp.FormData({k: v if isinstance(v, str) else json.dumps(v)
                                     for k, v in body.items()})
        else:
            data = str(body).encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
    return {"url": url, "query": query, "headers": headers, "data": data}


def _texts(values: dict[str, Any]) -> dict[str, Any]:
    """Values for a URL or a query: all as text (`{conversation}` as its JSON)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def _snippet(content: bytes) -> str:
    return repr(content[:_SNIPPET].decode("utf-8", "replace"))


def _extract(endpoint: EndpointConfig, content: bytes, content_type: str) -> tuple[str, Any]:
    """(answer text, the parsed JSON body or None)."""
    spec = endpoint.response
    path = parse_json_path(spec.json_path) if spec.json_path else None
    sse = spec.stream == "sse" or (spec.stream == "auto" and "text/event-stream" in content_type)
    data: Any = None
    if sse:
        text = _join_events(content.decode("utf-8", "replace"), path)
    elif path is not None:
        data = json.loads(content)
        value = follow(data, path)
        if not isinstance(value, str | int | float):
            raise TypeError(f"{spec.json_path} is a {type(value).__name__}, not text")
        text = str(value)
    else:
        text = content.decode("utf-8", "replace")
        if spec.tool_calls_path or endpoint.session.source == "json":
            data = json.loads(content)
    if spec.regex is not None:
        import re

        match = re.search(spec.regex, text, re.DOTALL)
        if match is None:
            raise LookupError(f"regex {spec.regex!r} matched nothing")
        text = match.group(1) if match.groups() else match.group(0)
    return text, data


def _join_events(stream: str, path: tuple[str | int, ...] | None) -> str:
    """The text of a Server-Sent Events stream: each event's data (through `path`), joined."""
    pieces: list[str] = []
    events = 0
    for line in stream.splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        events += 1
        if path is None:
            pieces.append(payload)
            continue
        try:
            value = follow(json.loads(payload), path)
        except LookupError:
            continue  # e.g. a role-only first delta
        if isinstance(value, str):
            pieces.append(value)
    if events == 0:
        raise ValueError("no data: event in the event stream")
    return "".join(pieces)


def _tool_calls(endpoint: EndpointConfig, data: Any) -> tuple[ToolCall, ...]:
    if endpoint.response.tool_calls_path is None or data is None:
        return ()
    raw = follow(data, parse_json_path(endpoint.response.tool_calls_path))
    if not isinstance(raw, list):
        raise TypeError(f"{endpoint.response.tool_calls_path} is not a list")
    calls = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise TypeError("a tool call needs a name")
        args = item.get("arguments", {})
        output, error = item.get("output"), item.get("error")
        calls.append(ToolCall(name=item["name"],
                              arguments=args if isinstance(args, str) else json.dumps(args),
                              id=item.get("id"),
                              output=None if output is None else _text(output),
                              error=None if error is None else _text(error)))
    return tuple(calls)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _remember(endpoint: EndpointConfig, conv: _Conversation, turns: list[tuple[str, str]],
              text: str, cookies: dict[str, str], header_session: str | None, data: Any,
              *, store: bool = True) -> None:
    """Keep this conversation's session for its next turn (keyed by the text so far; `store`
    False: only follow the session, as while re-sending a kept history)."""
    spec = endpoint.session
    conv.cookies.update(cookies)
    if spec.source == "cookie" and spec.name and spec.name in conv.cookies:
        conv.session_id = conv.cookies[spec.name]
    elif spec.source == "header" and header_session:
        conv.session_id = header_session
    elif spec.source == "json" and spec.json_path and data is not None:
        try:
            conv.session_id = str(follow(data, parse_json_path(spec.json_path)))
        except LookupError:
            pass  # the app gave no new id this turn: keep the one we had
    _hold(conv.session_id, len(turns) + 1)
    if not store:
        return
    _conversations[_key(endpoint.url, [*turns, ("assistant", text)])] = conv
    while len(_conversations) > MAX_SESSIONS:
        _conversations.popitem(last=False)


def _hold(session_id: str, turns: int) -> None:
    """The app's session `session_id` now holds `turns` user/assistant messages."""
    _held[session_id] = turns
    _held.move_to_end(session_id)
    while len(_held) > MAX_SESSIONS:
        _held.popitem(last=False)
