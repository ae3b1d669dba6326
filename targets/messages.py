"""Chat messages as typed values: `ChatMessage` is a system, user, assistant or tool message.

Why typed: a conversation passes through techniques, judges, optimizer harnesses, guardrails and
the store; as `list[dict]` every reader re-guessed its keys. The OpenAI wire form exists only at
the edges: `to_openai` where a model is called or a prompt is stored (attempt prompts, and the
`prompt_hash` idempotency keys computed from them, keep exactly their old JSON, so old runs
still read and resume), `from_openai` where stored or user-given messages come back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from targets.completion import ToolCall

#: A message's content: text, or the parts of a multimodal user message as sent on the wire.
Content: TypeAlias = str | tuple[Mapping[str, Any], ...]


def _text_of(content: Content | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(p["text"]) for p in content if isinstance(p, Mapping) and "text" in p)


def _wire_content(content: Content) -> Any:
    return content if isinstance(content, str) else [dict(part) for part in content]


@dataclass(frozen=True, kw_only=True, slots=True)
class SystemMessage:
    content: str
    name: str | None = None
    role: Literal["system"] = "system"

    @property
    def text(self) -> str:
        return self.content


@dataclass(frozen=True, kw_only=True, slots=True)
class UserMessage:
    content: Content
    name: str | None = None
    role: Literal["user"] = "user"

    @property
    def text(self) -> str:
        """The text (a multimodal message's text parts, one per line)."""
        return _text_of(self.content)


@dataclass(frozen=True, kw_only=True, slots=True)
class AssistantMessage:
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    name: str | None = None
    role: Literal["assistant"] = "assistant"

    @property
    def text(self) -> str:
        return self.content or ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolMessage:
    content: str
    tool_call_id: str
    name: str | None = None
    role: Literal["tool"] = "tool"

    @property
    def text(self) -> str:
        return self.content


ChatMessage: TypeAlias = SystemMessage | UserMessage | AssistantMessage | ToolMessage
Role = Literal["system", "user", "assistant", "tool"]


def system(text: str) -> SystemMessage:
    return SystemMessage(content=text)


def user(text: str) -> UserMessage:
    return UserMessage(content=text)


def assistant(text: str | None) -> AssistantMessage:
    return AssistantMessage(content=text)


def to_openai(messages: Iterable[ChatMessage]) -> list[dict[str, Any]]:
    """The OpenAI chat wire form (also the stored form): only the keys a message has set, so
    a plain message is exactly `{"role": ..., "content": ...}`."""
    return [_to_openai(message) for message in messages]


def _to_openai(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if isinstance(message, AssistantMessage):
        out["content"] = message.content
        if message.tool_calls:
            out["tool_calls"] = [
                {"id": call.id, "type": "function",
                 "function": {"name": call.name, "arguments": call.arguments}}
                for call in message.tool_calls
            ]
    elif isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
        out["content"] = message.content
    else:
        out["content"] = _wire_content(message.content)
    if message.name is not None:
        out["name"] = message.name
    return out


class MessageFormatError(ValueError):
    """A mapping that is not an OpenAI chat message siegeflow can represent."""


def from_openai(messages: Iterable[Mapping[str, Any]]) -> list[ChatMessage]:
    """Typed messages from the wire/stored form; `MessageFormatError` names what is wrong."""
    return [message_from_openai(m, index=i) for i, m in enumerate(messages)]


def message_from_openai(data: Mapping[str, Any], *, index: int = 0) -> ChatMessage:
    if not isinstance(data, Mapping):
        raise MessageFormatError(f"message {index}: expected a mapping, got {type(data).__name__}")
    role = data.get("role")
    known = {"role", "content", "name", "tool_calls", "tool_call_id"}
    extra = sorted(set(data) - known)
    if extra:
        raise MessageFormatError(f"message {index} ({role}): unsupported keys {extra}")
    name = data.get("name")
    content = data.get("content")
    if role == "assistant":
        if content is not None and not isinstance(content, str):
            raise MessageFormatError(f"message {index} (assistant): content must be text")
        return AssistantMessage(content=content, name=name,
                                tool_calls=tuple(_tool_call(c, index) for c in data.get("tool_calls") or ()))
    if "tool_calls" in data:
        raise MessageFormatError(f"message {index} ({role}): only assistant messages carry tool_calls")
    if role == "tool":
        call_id = data.get("tool_call_id")
        if not isinstance(call_id, str) or not isinstance(content, str):
            raise MessageFormatError(f"message {index} (tool): needs text content and a tool_call_id")
        return ToolMessage(content=content, tool_call_id=call_id, name=name)
    if "tool_call_id" in data:
        raise MessageFormatError(f"message {index} ({role}): only tool messages carry tool_call_id")
    if role == "system":
        if not isinstance(content, str):
            raise MessageFormatError(f"message {index} (system): content must be text")
        return SystemMessage(content=content, name=name)
    if role == "user":
        if isinstance(content, str):
            return UserMessage(content=content, name=name)
        if isinstance(content, list) and all(isinstance(p, Mapping) for p in content):
            return UserMessage(content=tuple(content), name=name)
        raise MessageFormatError(f"message {index} (user): content must be text or a list of parts")
    raise MessageFormatError(f"message {index}: unknown role {role!r}")


def _tool_call(data: Any, index: int) -> ToolCall:
    function = data.get("function") if isinstance(data, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise MessageFormatError(f"message {index} (assistant): malformed tool call {data!r}")
    return ToolCall(name=function["name"], arguments=str(function.get("arguments") or ""),
                    id=data.get("id"))


def as_messages(messages: Sequence[ChatMessage | Mapping[str, Any]]) -> list[ChatMessage]:
    """Typed messages from typed ones or their wire form (for callers outside siegeflow's typed
    code: stored prompts, user plugins and the spec-000 API that speak dicts)."""
    return [m if isinstance(m, SystemMessage | UserMessage | AssistantMessage | ToolMessage)
            else message_from_openai(m, index=i) for i, m in enumerate(messages)]


def wire(messages: Sequence[ChatMessage | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The wire form of typed messages; messages already in that form are kept as they are (so
    an idempotency key computed from stored JSON never changes)."""
    return [_to_openai(m) if isinstance(m, SystemMessage | UserMessage | AssistantMessage | ToolMessage)
            else dict(m) for m in messages]


def last_user_text(messages: Sequence[ChatMessage]) -> str:
    """The text of the last user message ("the prompt" of a conversation), or ''."""
    for message in reversed(messages):
        if isinstance(message, UserMessage):
            return message.text
    return ""
