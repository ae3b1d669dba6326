"""A local OpenAI-compatible chat server for tests and benchmarks.

Why hand-rolled: every end-to-end test and benchmark talks to this server, so it must be cheap
and fully controllable — fixed latency that costs no CPU (``asyncio.sleep``), a pluggable
responder, fault injection and exact request counts. A lean HTTP/1.1 server on
``asyncio.Protocol`` (keep-alive, Content-Length bodies) does that with the standard library.
Measured in its own process on the 2-core box (``tests.support.http_load``): 6,800 req/s at 64
connections without latency (~125 µs CPU per request, responder and stats included; uvicorn with
a bare ASGI app: 5,300 req/s at ~190 µs); with 200 ms latency 308 req/s at 64 connections (the
ceiling is 64 / 0.2 s = 320) and 1,160 req/s at 256.

Endpoints: ``POST /v1/chat/completions`` (and ``/chat/completions``), ``POST /v1/completions``
(text completion: the responder sees the request with its ``prompt``), ``GET /v1/models``,
``GET /_stats[?log=1]``, ``POST /_reset``, ``POST /_config`` (``{"latency_s": .., "faults": [..]}``),
``GET /health``.

In-process::

    with OpenAIServer(latency_s=0.05, faults=[Fault(status=429, first=2)]) as server:
        ... server.base_url ...   # http://127.0.0.1:PORT/v1
        server.stats()["max_in_flight"]

or just the URL::

    with serve(latency_s=0.05) as base_url: ...

Another process (so its CPU is not the benchmark's)::

    python -m tests.support.openai_server --port 0 --latency 0.2 \\
        --responder tests.support.default_responder:default_responder \\
        --fault '{"status": 503, "first": 3, "match": "bomb"}'

prints ``http://127.0.0.1:PORT/v1`` as its first stdout line; ``start_server_process(...)`` does
all of that, waits until ready and kills the process by PID at exit.

Faults answer at once (no latency), except ``hang_s`` faults which hold the request that long and
then answer 504. Latency applies to every other chat request.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import importlib
import inspect
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.support.default_responder import default_responder, prompt_text
from tests.support.replies import Reply, ToolCall, as_reply

Responder = Callable[[dict[str, Any]], "Reply | str | Awaitable[Reply | str]"]

__all__ = [
    "Fault",
    "OpenAIServer",
    "Reply",
    "Responder",
    "ServerProcess",
    "ToolCall",
    "serve",
    "start_server_process",
]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 32 * 1024 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


@dataclass(frozen=True, kw_only=True)
class Fault:
    """Fail matching chat requests with ``status`` (or hold them ``hang_s`` seconds, then 504).

    ``match`` is a regex searched in the joined message contents, ``model`` a regex searched in the
    request's model; ``first`` limits the fault to the first N matching requests (None: always).
    """

    status: int | None = None
    hang_s: float | None = None
    match: str | None = None
    model: str | None = None
    first: int | None = None
    retry_after: float | None = None
    message: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.status is None) == (self.hang_s is None):
            raise ValueError("a Fault needs exactly one of status= or hang_s=")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"Fault status must be 4xx/5xx, got {self.status}")
        if self.first is not None and self.first < 0:
            raise ValueError("Fault first= must be >= 0")
        for pattern in (self.match, self.model):
            if pattern is not None:
                re.compile(pattern)

    @property
    def label(self) -> str:
        """The name stats use for this rule."""
        if self.name:
            return self.name
        what = f"hang{self.hang_s:g}s" if self.hang_s is not None else str(self.status)
        parts = [what, f"first={self.first}" if self.first is not None else "always"]
        if self.match:
            parts.append(f"match={self.match}")
        if self.model:
            parts.append(f"model={self.model}")
        return ":".join(parts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown Fault fields: {sorted(unknown)}")
        return cls(**data)


class _Rule:
    """A fault with its compiled patterns and counters (mutated on the server loop only)."""

    __slots__ = ("fault", "match", "model", "matched", "applied")

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.match = re.compile(fault.match) if fault.match else None
        self.model = re.compile(fault.model) if fault.model else None
        self.matched = 0
        self.applied = 0


def _usage_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


def _error_body(status: int, message: str) -> bytes:
    err = {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": None,
            "code": str(status),
        }
    }
    return json.dumps(err).encode()


class _Response:
    __slots__ = ("status", "body", "headers", "content_type")

    def __init__(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.content_type = content_type

    def encode(self, keep_alive: bool) -> bytes:
        head = [
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Status')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
        ]
        if not keep_alive:
            head.append("Connection: close")
        if self.headers:
            head.extend(f"{k}: {v}" for k, v in self.headers.items())
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


def _json(status: int, payload: Any) -> _Response:
    return _Response(status, json.dumps(payload).encode())


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; requests are served one after another, in order."""

    def __init__(self, server: OpenAIServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server._connections.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.task is None:
            self._next()

    def _reject(self, status: int, message: str) -> None:
        assert self.transport is not None
        self.transport.write(_Response(status, _error_body(status, message)).encode(False))
        self.transport.close()
        self.buf.clear()

    def _next(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > _MAX_HEAD:
                self._reject(431, "request head too large")
            return
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            self._reject(400, "malformed request line")
            return
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._reject(501, "chunked request bodies are not supported; send Content-Length")
            return
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            self._reject(400, "bad Content-Length")
            return
        if length > _MAX_BODY:
            self._reject(413, "request body too large")
            return
        total = end + 4 + length
        if len(self.buf) < total:
            return
        body = bytes(self.buf[end + 4 : total])
        del self.buf[:total]
        conn = headers.get("connection", "").lower()
        keep_alive = (version == "HTTP/1.1" and conn != "close") or conn == "keep-alive"
        self.task = asyncio.get_running_loop().create_task(
            self._serve(method, target, headers, body, keep_alive)
        )
        self.server._tasks.add(self.task)
        self.task.add_done_callback(self.server._tasks.discard)

    async def _serve(
        self, method: str, target: str, headers: dict[str, str], body: bytes, keep_alive: bool
    ) -> None:
        try:
            response = await self.server._dispatch(method, target, headers, body)
        except Exception as exc:  # noqa: BLE001 - a server bug: answer 500 and drop the connection, loudly
            traceback.print_exc(file=sys.stderr)
            response, keep_alive = _Response(500, _error_body(500, f"server bug: {exc!r}")), False
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            self.task = None
            return
        transport.write(response.encode(keep_alive))
        self.task = None
        if not keep_alive:
            transport.close()
        elif self.buf:
            self._next()


class OpenAIServer:
    """The server; in-process via ``with OpenAIServer(...) as server`` (a thread with its own loop)."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        responder: Responder = default_responder,
        faults: Iterable[Fault] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = ("siegeflow-test",),
        api_key: str | None = None,
        log_size: int = 1000,
    ) -> None:
        if latency_s < 0:
            raise ValueError("latency_s must be >= 0")
        self.host = host
        self.port = port
        self.models = tuple(models)
        self._latency_s = float(latency_s)
        self._responder = responder
        self._async_responder = inspect.iscoroutinefunction(responder)
        self._api_key = api_key
        self._rules: list[_Rule] = [_Rule(f) for f in faults]
        self._lock = threading.Lock()
        self._log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._ids = itertools.count(1)
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._reset_counters()

    # ----- counters -------------------------------------------------------------------------
    def _reset_counters(self) -> None:
        self._requests = 0
        self._chat_requests = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._by_status: dict[int, int] = {}
        self._responder_errors = 0
        self._log.clear()
        for rule in self._rules:
            rule.matched = rule.applied = 0

    def stats(self, *, log: bool = False) -> dict[str, Any]:
        """A snapshot: totals, per-rule counts, current/max in-flight, optionally the request log."""
        with self._lock:
            snap: dict[str, Any] = {
                "requests": self._requests,
                "chat_requests": self._chat_requests,
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "responder_errors": self._responder_errors,
                "latency_s": self._latency_s,
                "rules": {
                    r.fault.label: {"matched": r.matched, "applied": r.applied} for r in self._rules
                },
            }
            if log:
                snap["log"] = list(self._log)
        return snap

    def reset(self) -> None:
        """Zero all counters and the log (fault ``first=N`` budgets start over too)."""
        with self._lock:
            self._reset_counters()

    def configure(
        self, *, latency_s: float | None = None, faults: Iterable[Fault] | None = None
    ) -> None:
        """Change latency and/or replace the fault rules (counters of new rules start at 0)."""
        with self._lock:
            if latency_s is not None:
                if latency_s < 0:
                    raise ValueError("latency_s must be >= 0")
                self._latency_s = float(latency_s)
            if faults is not None:
                self._rules = [_Rule(f) for f in faults]

    def set_responder(self, responder: Responder) -> None:
        with self._lock:
            self._responder = responder
            self._async_responder = inspect.iscoroutinefunction(responder)

    # ----- request handling -----------------------------------------------------------------
    async def _dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> _Response:
        path, _, query = target.partition("?")
        with self._lock:
            self._requests += 1
        if path in ("/v1/chat/completions", "/chat/completions", "/v1/completions", "/completions"):
            if method != "POST":
                return _Response(405, _error_body(405, "use POST"))
            return await self._chat(headers, body, text=path in ("/v1/completions", "/completions"))
        if method == "GET" and path in ("/v1/models", "/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "siegeflow"} for m in self.models]
            return _json(200, {"object": "list", "data": data})
        if method == "GET" and path == "/_stats":
            return _json(200, self.stats(log="log=1" in query))
        if method == "POST" and path == "/_reset":
            self.reset()
            return _json(200, {"ok": True})
        if method == "POST" and path == "/_config":
            try:
                cfg = json.loads(body or b"{}")
                faults = cfg.get("faults")
                self.configure(
                    latency_s=cfg.get("latency_s"),
                    faults=None if faults is None else [Fault.from_dict(f) for f in faults],
                )
            except (ValueError, TypeError, AttributeError) as exc:
                return _Response(400, _error_body(400, f"bad config: {exc}"))
            return _json(200, {"ok": True})
        if method == "GET" and path == "/health":
            return _json(200, {"ok": True})
        return _Response(404, _error_body(404, f"no route for {method} {path}"))

    def _pick_fault(self, text: str, model: str) -> Fault | None:
        chosen: Fault | None = None
        for rule in self._rules:
            if rule.match is not None and not rule.match.search(text):
                continue
            if rule.model is not None and not rule.model.search(model):
                continue
            rule.matched += 1
            if chosen is None and (rule.fault.first is None or rule.applied < rule.fault.first):
                rule.applied += 1
                chosen = rule.fault
        return chosen

    async def _chat(self, headers: dict[str, str], body: bytes, *, text: bool = False) -> _Response:
        started = time.time()
        with self._lock:
            self._chat_requests += 1
            self._in_flight += 1
            if self._in_flight > self._max_in_flight:
                self._max_in_flight = self._in_flight
        request: dict[str, Any] = {}
        rule_label: str | None = None
        response: _Response
        try:
            response, rule_label, request = await self._chat_inner(headers, body, text)
        finally:
            with self._lock:
                self._in_flight -= 1
        with self._lock:
            status = response.status
            self._by_status[status] = self._by_status.get(status, 0) + 1
            if self._log.maxlen:
                self._log.append(
                    {
                        "t": round(started, 3),
                        "model": request.get("model"),
                        "status": status,
                        "rule": rule_label,
                        "kind": "text" if text else "chat",
                        "n_messages": len(request.get("messages") or []),
                        "tools": bool(request.get("tools")),
                        "prompt": prompt_text(request)[:200] if request else None,
                        "duration_s": round(time.time() - started, 4),
                    }
                )
        return response

    async def _chat_inner(
        self, headers: dict[str, str], body: bytes, text: bool = False
    ) -> tuple[_Response, str | None, dict[str, Any]]:
        if self._api_key is not None and headers.get("authorization") != f"Bearer {self._api_key}":
            return _Response(401, _error_body(401, "Incorrect API key provided.")), None, {}
        try:
            request = json.loads(body)
        except ValueError as exc:
            return _Response(400, _error_body(400, f"invalid JSON body: {exc}")), None, {}
        if not isinstance(request, dict):
            return _Response(400, _error_body(400, "the body must be a JSON object")), None, {}
        if text and not isinstance(request.get("prompt"), str):
            return _Response(400, _error_body(400, "'prompt' must be a string")), None, {}
        if not text and not isinstance(request.get("messages"), list):
            return _Response(400, _error_body(400, "'messages' must be a list")), None, {}
        model = str(request.get("model") or "")
        with self._lock:
            fault = self._pick_fault(prompt_text(request), model)
            latency = self._latency_s
            responder, is_async = self._responder, self._async_responder
        if fault is not None:
            if fault.hang_s is not None:
                await asyncio.sleep(fault.hang_s)
                return _Response(504, _error_body(504, "upstream hung")), fault.label, request
            assert fault.status is not None
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            message = fault.message or f"injected fault {fault.status}"
            return _Response(fault.status, _error_body(fault.status, message), extra), fault.label, request
        if latency:
            await asyncio.sleep(latency)
        try:
            raw = await responder(request) if is_async else responder(request)  # type: ignore[misc]  # sync or async responder
            reply = as_reply(raw)
        except Exception as exc:  # noqa: BLE001 - a responder bug: answer 500 loudly and count it, never swallow
            with self._lock:
                self._responder_errors += 1
            traceback.print_exc(file=sys.stderr)
            return _Response(500, _error_body(500, f"responder failed: {exc!r}")), None, request
        if reply.status >= 400:
            msg = reply.error or f"responder error {reply.status}"
            return _Response(reply.status, _error_body(reply.status, msg), dict(reply.headers) or None), None, request
        if text:
            return self._text_completion(request, model, reply), None, request
        return self._completion(request, model, reply), None, request

    def _text_completion(self, request: dict[str, Any], model: str, reply: Reply) -> _Response:
        """A ``text_completion`` object: the reply's text as ``choices[0].text``."""
        n = next(self._ids)
        prompt_tokens = _usage_tokens(prompt_text(request))
        completion_tokens = _usage_tokens(reply.text or "")
        payload = {
            "id": f"cmpl-{n}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "text": reply.text or "", "logprobs": None,
                         "finish_reason": reply.finish_reason or "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
        return _Response(200, json.dumps(payload).encode(), dict(reply.headers) or None)

    def _completion(self, request: dict[str, Any], model: str, reply: Reply) -> _Response:
        n = next(self._ids)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for i, call in enumerate(reply.tool_calls)
            ]
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        out_text = (reply.text or "") + "".join(c.name + c.arguments for c in reply.tool_calls)
        prompt_tokens = _usage_tokens(prompt_text(request))
        completion_tokens = _usage_tokens(out_text)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        base = {"id": f"chatcmpl-{n}", "created": int(time.time()), "model": model}
        extra = dict(reply.headers) or None
        if request.get("stream"):
            return _Response(200, self._sse(base, message, finish, usage, request), extra, "text/event-stream")
        payload = {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": usage,
        }
        return _Response(200, json.dumps(payload).encode(), extra)

    @staticmethod
    def _sse(
        base: dict[str, Any], message: dict[str, Any], finish: str, usage: dict[str, int], request: dict[str, Any]
    ) -> bytes:
        """A whole streamed answer in one body: role+content chunk, finish chunk, optional usage."""
        delta = {k: v for k, v in message.items() if v is not None}
        if "tool_calls" in delta:
            delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(delta["tool_calls"])]
        chunk = {**base, "object": "chat.completion.chunk"}
        events = [
            {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
        ]
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk, "choices": [], "usage": usage})
        lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
        return "".join(lines).encode()

    # ----- lifecycle ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self.port, backlog=1024, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def start(self, timeout_s: float = 10.0) -> OpenAIServer:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._close())
                loop.close()

        self._thread = threading.Thread(target=run, name="openai-test-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError(f"test server did not start within {timeout_s}s")
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve(**kwargs: Any) -> Iterator[str]:
    """Run an ``OpenAIServer(**kwargs)`` in-process and yield its base URL (``.../v1``)."""
    with OpenAIServer(**kwargs) as server:
        yield server.base_url


# ----- subprocess mode ------------------------------------------------------------------------
_REPO_ROOT = Path(__file__).resolve().parents[2]


def load_responder(spec: str) -> Responder:
    """``"package.module:function"`` → the function."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"responder must look like 'module:function', got {spec!r}")
    fn = getattr(importlib.import_module(module_name), attr)
    if not callable(fn):
        raise TypeError(f"{spec} is not callable")
    return fn


@dataclass(frozen=True, kw_only=True)
class ServerProcess:
    """A server running in a child process; ``stop()`` (also run at exit) kills it by PID."""

    process: subprocess.Popen[str]
    base_url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def _call(self, method: str, path: str, payload: Any = None, timeout_s: float = 10.0) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.root_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return json.loads(resp.read())

    def stats(self, *, log: bool = False) -> dict[str, Any]:
        return self._call("GET", "/_stats" + ("?log=1" if log else ""))

    def reset(self) -> None:
        self._call("POST", "/_reset", {})

    def configure(self, *, latency_s: float | None = None, faults: Iterable[Fault] | None = None) -> None:
        cfg: dict[str, Any] = {}
        if latency_s is not None:
            cfg["latency_s"] = latency_s
        if faults is not None:
            cfg["faults"] = [asdict(f) for f in faults]
        self._call("POST", "/_config", cfg)

    def stop(self, timeout_s: float = 5.0) -> None:
        proc = self.process
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout_s)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server_process(
    *,
    latency_s: float = 0.0,
    responder: str | None = None,
    faults: Iterable[Fault] = (),
    port: int = 0,
    models: Sequence[str] | None = None,
    api_key: str | None = None,
    log_size: int | None = None,
    ready_timeout_s: float = 20.0,
    python: str = sys.executable,
) -> ServerProcess:
    """Launch ``python -m tests.support.openai_server`` and wait (bounded) until it serves.

    ``responder`` is a ``"module:function"`` spec importable from the repository root. The child
    exits on its own when this process dies (it watches its stdin), and ``stop()`` runs at exit.
    """
    cmd = [python, "-m", "tests.support.openai_server", "--port", str(port), "--latency", str(latency_s)]
    cmd.append("--exit-with-parent")
    if responder:
        cmd += ["--responder", responder]
    for fault in faults:
        cmd += ["--fault", json.dumps(asdict(fault))]
    if models:
        cmd += ["--models", ",".join(models)]
    if log_size is not None:
        cmd += ["--log-size", str(log_size)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
    if api_key is not None:
        env["SIEGEFLOW_TEST_SERVER_API_KEY"] = api_key  # never on the command line (ps shows it)
    proc = subprocess.Popen(
        cmd,
        cwd=_REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_line: list[str] = []
    got_line = threading.Event()

    def read_first_line() -> None:
        assert proc.stdout is not None
        first_line.append(proc.stdout.readline())
        got_line.set()

    threading.Thread(target=read_first_line, daemon=True).start()
    handle: ServerProcess | None = None
    try:
        if not got_line.wait(ready_timeout_s) or not first_line[0].startswith("http"):
            raise RuntimeError(
                f"test server process did not report its URL within {ready_timeout_s}s "
                f"(exit code {proc.poll()}, stderr: {_drain_stderr(proc)!r})"
            )
        handle = ServerProcess(process=proc, base_url=first_line[0].strip())
        handle._call("GET", "/health", timeout_s=ready_timeout_s)
    except BaseException:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        raise
    atexit.register(handle.stop)
    return handle


def _drain_stderr(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    return proc.stderr.read()[-2000:] if proc.stderr is not None else ""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per chat request")
    parser.add_argument("--responder", default=None, help="module:function (default: default_responder)")
    parser.add_argument("--fault", action="append", default=[], help="JSON object of Fault fields")
    parser.add_argument("--models", default="siegeflow-test", help="comma-separated ids for /v1/models")
    parser.add_argument("--log-size", type=int, default=1000)
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when stdin closes")
    args = parser.parse_args(argv)

    server = OpenAIServer(
        latency_s=args.latency,
        responder=load_responder(args.responder) if args.responder else default_responder,
        faults=[Fault.from_dict(json.loads(f)) for f in args.fault],
        host=args.host,
        port=args.port,
        models=[m for m in args.models.split(",") if m],
        api_key=os.environ.get("SIEGEFLOW_TEST_SERVER_API_KEY"),
        log_size=args.log_size,
    )

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if args.exit_with_parent:

            def watch_stdin() -> None:
                sys.stdin.read()  # returns at EOF: the parent is gone or closed the pipe
                loop.call_soon_threadsafe(stop.set)

            threading.Thread(target=watch_stdin, daemon=True).start()
        await server._open()
        print(server.base_url, flush=True)
        try:
            await stop.wait()
        finally:
            await server._close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
