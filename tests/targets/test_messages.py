"""Typed chat messages: the OpenAI form round-trips exactly (stored attempt prompts and the
idempotency keys computed from them must not change), and a bad message is named."""

from __future__ import annotations

import pytest

from attacks import AttackPrompt, prompt_hash
from targets.completion import ToolCall
from targets.messages import (
    AssistantMessage,
    MessageFormatError,
    SystemMessage,
    ToolMessage,
    UserMessage,
    as_messages,
    from_openai,
    last_user_text,
    to_openai,
    wire,
)

#: What the store holds today for a chat prompt and for an agent run (content None beside
#: tool calls; a tool answer keyed by its call id).
STORED = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1_0", "type": "function",
         "function": {"name": "read_inbox", "arguments": "{\"n\": 1}"}}]},
    {"role": "tool", "tool_call_id": "call_1_0", "content": "one email"},
    {"role": "assistant", "content": "done"},
    {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url",
                                                                     "image_url": {"url": "x"}}]},
]


def test_the_stored_form_round_trips_exactly() -> None:
    typed = from_openai(STORED)
    assert [type(m) for m in typed] == [SystemMessage, UserMessage, AssistantMessage, ToolMessage,
                                        AssistantMessage, UserMessage]
    assert typed[2] == AssistantMessage(tool_calls=(ToolCall(name="read_inbox",
                                                             arguments="{\"n\": 1}", id="call_1_0"),))
    assert to_openai(typed) == STORED
    assert last_user_text(typed) == "look"


def test_hashes_of_typed_prompts_are_those_of_their_stored_form() -> None:
    typed = [UserMessage(content="x")]
    # Pinned in tests/attacks/test_base_registry.py for the dict form: typed gives the same key.
    assert prompt_hash(typed) == prompt_hash([{"role": "user", "content": "x"}]) == (
        "7c5139ff349b5009ca51b90118aa039f0c9e60fa9bfb4010bc15a58439c7759f"
    )
    assert wire([*typed, {"content": "y", "role": "user"}]) == [
        {"role": "user", "content": "x"}, {"content": "y", "role": "user"}]


def test_an_attempt_read_back_from_the_store_is_typed() -> None:
    prompt = AttackPrompt(technique="t", variant="v", messages=STORED[:2])
    assert prompt.messages == (SystemMessage(content="Be terse."), UserMessage(content="hi"))
    assert prompt.wire == STORED[:2] and prompt.text == "hi"
    assert prompt.hash == prompt_hash(STORED[:2])


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"role": "robot", "content": "x"}, "unknown role 'robot'"),
        ({"role": "user", "content": "x", "extra": 1}, "unsupported keys"),
        ({"role": "tool", "content": "x"}, "tool_call_id"),
        ({"role": "user", "content": "x", "tool_calls": []}, "only assistant"),
        ({"role": "system", "content": None}, "content must be text"),
        ("user: hi", "expected a mapping"),
    ],
)
def test_a_bad_message_is_named(message: object, problem: str) -> None:
    with pytest.raises(MessageFormatError, match=problem):
        as_messages([UserMessage(content="ok"), message])  # type: ignore[list-item]  # bad messages on purpose
