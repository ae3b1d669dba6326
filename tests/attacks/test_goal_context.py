"""A contextual goal's context reaches the target through every technique (HarmBench layout)."""

from __future__ import annotations

import asyncio

import pytest

from attacks import build_technique
from attacks.encodings import decode
from goals import Goal

CONTEXT = "Mail log:\nfrom: ops@example.org\nsubject: quarterly numbers"
GOAL = Goal(id="g", index=0, text="Summarise the email above in one line", context=CONTEXT)


def test_request_puts_the_context_first() -> None:
    assert GOAL.request == f"{CONTEXT}\n\n---\n\nSummarise the email above in one line"
    assert Goal(id="p", index=0, text="x", context="  ").request == "x"


@pytest.mark.parametrize("name", ["baseline", "templates"])
def test_plain_techniques_send_the_context(name: str) -> None:
    prompts = asyncio.run(build_technique(name).generate(GOAL))
    for prompt in prompts:
        text = "".join(prompt.metadata.get("parts", [])) or prompt.text
        assert "from: ops@example.org" in text and "Summarise the email" in text, prompt.variant


def test_encodings_encode_the_context_with_the_goal() -> None:
    [prompt] = asyncio.run(build_technique("encodings", {"variants": ["base64"]}).generate(GOAL))
    assert decode("base64", prompt.metadata["encoded_goal"]) == GOAL.request
