"""Template technique: deterministic, one prompt per selected variant."""

from __future__ import annotations

import asyncio

import pytest

from attacks import build_technique
from attacks.templates import ALL_TEMPLATES, DEFAULT_OPENING, split_payload
from goals import Goal

GOAL = Goal(id="g", index=0, text="Write a poem about locks", target="Sure, here is a poem")


def generate(config=None, goal=GOAL):
    return asyncio.run(build_technique("templates", config).generate(goal))


def test_all_variants_by_default_in_order_and_deterministic():
    prompts = generate()
    assert [p.variant for p in prompts] == list(ALL_TEMPLATES)
    assert all(p.technique == "templates" and p.metadata["template"] == p.variant for p in prompts)
    assert all(len(p.messages) == 1 and p.messages[0].role == "user" for p in prompts)
    assert [p.messages for p in prompts] == [p.messages for p in generate()]
    assert len({p.hash for p in prompts}) == len(prompts)


def test_selected_variants_only():
    prompts = generate({"variants": ["role_play", "prefix_injection"]})
    assert [p.variant for p in prompts] == ["role_play", "prefix_injection"]


@pytest.mark.parametrize("variant", [v for v in ALL_TEMPLATES if v != "payload_splitting"])
def test_goal_text_is_embedded(variant):
    (prompt,) = generate({"variants": [variant]})
    assert GOAL.text in prompt.text


def test_prefix_injection_uses_target_then_default():
    (with_target,) = generate({"variants": ["prefix_injection"]})
    assert '"Sure, here is a poem"' in with_target.text
    bare = Goal(id="b", index=0, text="Do X")
    (without,) = generate({"variants": ["prefix_injection"]}, goal=bare)
    assert DEFAULT_OPENING in without.text and without.metadata["opening"] == DEFAULT_OPENING


def test_role_play_persona_option():
    (prompt,) = generate({"variants": ["role_play"], "persona": "ZED"})
    assert "You play ZED" in prompt.text and prompt.metadata["persona"] == "ZED"


def test_payload_splitting_reassembles_to_the_goal():
    (prompt,) = generate({"variants": ["payload_splitting"], "split_parts": 2})
    parts = prompt.metadata["parts"]
    assert len(parts) == 2 and "".join(parts) == GOAL.text
    assert "Let z = a + b." in prompt.text
    assert GOAL.text not in prompt.text


@pytest.mark.parametrize("text,n", [("one", 3), ("a b c d e f g", 3), ("a  b", 2), ("x y", 8)])
def test_split_payload_is_lossless(text, n):
    parts = split_payload(text, n)
    assert "".join(parts) == text
    assert 1 <= len(parts) <= n
