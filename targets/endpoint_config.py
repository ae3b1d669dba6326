"""Your own HTTP app as a target: the `endpoint:` section of a target config, validated.

A config is data, never code: request templates use `{placeholder}` substitution only (no
expressions, no attribute access), response extraction a dotted/indexed JSON path or a regular
expression. Every placeholder and path is checked when the config loads, so a typo fails the
run before it starts (exit 2, naming the field) instead of in every attempt.
"""

from __future__ import annotations

import functools
import re
from contextvars import ContextVar
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: What a template may name. `api_key` only in headers (never in a URL, a query or a body
#: that a server may log or echo).
PLACEHOLDERS: frozenset[str] = frozenset(
    {"prompt", "conversation", "session_id", "goal_id", "system_prompt", "turn"}
)
HEADER_ONLY: frozenset[str] = frozenset({"api_key"})

#: The goal an attempt works on, for `{goal_id}` (set by the completions step).
CURRENT_GOAL: ContextVar[str | None] = ContextVar("siegeflow_goal_id", default=None)

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|\{|\}")
_PATH_PART = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]")


class TemplateError(ValueError):
    """A template names an unknown placeholder or has an unbalanced brace."""


#: A parsed template: literal text and placeholder names (as `("name",)` tuples).
Template = tuple[str | tuple[str], ...]


@functools.lru_cache(maxsize=1024)  # parsed once: templates are rendered on every call
def parse_template(text: str, allowed: frozenset[str]) -> Template:
    """`text` as literal parts and placeholders; `{{`/`}}` are literal braces."""
    parts: list[str | tuple[str]] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        if match.start() > pos:
            parts.append(text[pos:match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif match.group(1) is None:
            raise TemplateError(f"unbalanced {token!r} in {text!r}: write {token * 2} for a literal brace")
        elif match.group(1) not in allowed:
            raise TemplateError(f"unknown placeholder {{{match.group(1)}}} in {text!r}; "
                                f"known: {', '.join('{' + p + '}' for p in sorted(allowed))}")
        else:
            parts.append((match.group(1),))
        pos = match.end()
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts)


def render(template: Template, values: dict[str, Any]) -> Any:
    """A template's text; a template that is one placeholder alone gives its value as is (so
    `{conversation}` in a JSON body is the list itself, not its text)."""
    if len(template) == 1 and isinstance(template[0], tuple):
        return values[template[0][0]]
    out: list[str] = []
    for part in template:
        if isinstance(part, tuple):
            value = values[part[0]]
            out.append(value if isinstance(value, str) else _json_text(value))
        else:
            out.append(part)
    return "".join(out)


def _json_text(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


@functools.lru_cache(maxsize=256)
def parse_json_path(path: str) -> tuple[str | int, ...]:
    """`choices[0].message.content` → `("choices", 0, "message", "content")`."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _PATH_PART.match(path, pos)
        if match is None or (pos == 0 and path.startswith(".")):
            raise ValueError(f"bad JSON path {path!r} at character {pos + 1}: expected a key "
                             "or [index], e.g. choices[0].message.content")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    if not parts:
        raise ValueError("empty JSON path")
    return tuple(parts)


def follow(data: Any, path: tuple[str | int, ...]) -> Any:
    """The value at `path`; `LookupError` naming the first step that is missing."""
    for depth, part in enumerate(path):
        if isinstance(part, int) and isinstance(data, list) and -len(data) <= part < len(data):
            data = data[part]
        elif isinstance(part, str) and isinstance(data, dict) and part in data:
            data = data[part]
        else:
            where = _path_text(path[:depth + 1])
            raise LookupError(f"no {where} in the response ({type(data).__name__} there)")
    return data


def _path_text(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


class ResponseSpec(BaseModel):
    """Where the answer is in a response: a JSON path, then (optionally) a regex, else the body.

    `stream`: `auto` reads Server-Sent Events when the response says `text/event-stream`;
    each event's `data:` is taken through `json_path` (missing in an event: skipped) and the
    pieces are joined. A chunked body is read whole.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    json_path: str | None = Field(None, description="e.g. choices[0].message.content or reply.text")
    regex: str | None = Field(None, description="applied to the (extracted) text: group 1 if any")
    stream: Literal["auto", "sse", "none"] = "auto"
    tool_calls_path: str | None = Field(
        None, description="JSON path of a list of {name, arguments[, output, error]} tool calls "
        "the app made"
    )

    @field_validator("json_path", "tool_calls_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            parse_json_path(value)
        return value

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regular expression: {exc}") from None
        return value


class SessionSpec(BaseModel):
    """How the app tells one conversation from another, so a multi-turn attack continues it.

    `client`: siegeflow makes a `{session_id}` per conversation and sends it each turn (put it in
    the body, a header or the query). `cookie`: the cookies the app sets are sent back on that
    conversation's next turn (`name`: the one that is `{session_id}`). `header`: the response
    header `name` holds the id. `json`: the response field at `json_path` holds it. Stateless
    apps take the whole history each turn through `{conversation}` instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["client", "cookie", "header", "json"] = "client"
    name: str | None = None
    json_path: str | None = None

    @field_validator("json_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None:
            parse_json_path(value)
        return value

    @model_validator(mode="after")
    def _needs(self) -> SessionSpec:
        if self.source == "header" and not self.name:
            raise ValueError("session.source 'header' needs session.name (the response header)")
        if self.source == "json" and not self.json_path:
            raise ValueError("session.source 'json' needs session.json_path")
        return self


class EndpointConfig(BaseModel):
    """One HTTP request per turn: URL, method, headers, query and body are templates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    method: Literal["GET", "POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | list[Any] | str | None = Field(
        None, description="JSON/form fields or text; strings in it are templates"
    )
    body_format: Literal["json", "form", "text"] = "json"
    response: ResponseSpec = Field(default_factory=ResponseSpec)
    session: SessionSpec = Field(default_factory=SessionSpec)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parse_template(value, PLACEHOLDERS)
        probe = _TOKEN.sub("x", value)
        parts = urlsplit(probe)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("url must be an http(s) URL like http://127.0.0.1:8000/chat")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            try:
                parse_template(text, PLACEHOLDERS | HEADER_ONLY)
            except TemplateError as exc:
                raise ValueError(f"header {name}: {exc}") from None
        return value

    @field_validator("query")
    @classmethod
    def _query(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            try:
                parse_template(text, PLACEHOLDERS)
            except TemplateError as exc:
                raise ValueError(f"query {name}: {exc}") from None
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: Any) -> Any:
        for where, text in _strings(value, "body"):
            try:
                parse_template(text, PLACEHOLDERS)
            except TemplateError as exc:
                raise ValueError(f"{where}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _form(self) -> EndpointConfig:
        if self.body_format == "form" and not isinstance(self.body, dict):
            raise ValueError("body_format 'form' needs body to be a mapping of fields")
        if self.body_format == "text" and not isinstance(self.body, str):
            raise ValueError("body_format 'text' needs body to be a string")
        if self.method == "GET" and self.body is not None:
            raise ValueError("a GET request has no body: use query")
        return self

    def sends_history(self) -> bool:
        """Whether each request carries the whole conversation (`{conversation}` anywhere): the
        app then needs no memory of its own, and a conversation can be rewound freely."""
        templates = [self.url, *self.headers.values(), *self.query.values(),
                     *(text for _, text in _strings(self.body, "body"))]
        return any(("conversation",) in parse_template(t, PLACEHOLDERS | HEADER_ONLY)
                   for t in templates)

    def uses_api_key(self) -> bool:
        return any(("api_key",) in parse_template(t, PLACEHOLDERS | HEADER_ONLY)
                   for t in self.headers.values())


def _strings(value: Any, where: str) -> list[tuple[str, str]]:
    """Every string in a JSON-like body, with where it is (`body.messages[0]`)."""
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{where}[{i}]")]
    return []


def render_body(value: Any, values: dict[str, Any]) -> Any:
    """The body with every string template rendered (keys and non-strings kept)."""
    if isinstance(value, str):
        return render(parse_template(value, PLACEHOLDERS), values)
    if isinstance(value, dict):
        return {k: render_body(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [render_body(v, values) for v in value]
    return value
