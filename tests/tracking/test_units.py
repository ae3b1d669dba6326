"""Smaller units: redact_json, the category classifier, goal specs, the standalone Tracker."""

from __future__ import annotations

import json
import os
import random
import string

import pytest

from tracking import (
    CategoryClassifier,
    EvaluationStatusEnum,
    GoalSpec,
    SQLBackend,
    Tracker,
    TrackingCoordinator,
    get_backend,
    redact,
    redact_json,
)

PIECES = [
    "Bearer abcdefgh12345",
    "sk-abcdefghijklmnopqrstu",
    "api_key=abcdefgh",
    "password: hunter22",
    "https://user:pw12@host/x?token=abcdefgh",
    "ghp_" + "a" * 24,
    "AKIA" + "B" * 16,
    "\n",
    "\t",
    '"',
    "\\",
    "é",
    "İ",
    "key",
    "token ",
    "monkey: banana",
    "max_tokens=5",
    "xoxb-1234567890a",
    "hf_" + "c" * 32,
    "eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0",
    " ",
    ": ",
    "=",
]


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(6 if depth < 3 else 3)
    if kind == 0:
        return "".join(
            rng.choice(PIECES + list(string.ascii_letters)) for _ in range(rng.randrange(12))
        )
    if kind == 1:
        return rng.choice([1, 2.5, True, None, -3])
    if kind == 2:
        return rng.choice(PIECES)
    if kind == 3:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = [
        "api_key",
        "note",
        "headers",
        "Authorization",
        "max_tokens",
        "text",
        "credentials",
        "tokenizer",
        "password",
        "data",
    ]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_redact_json_matches_redact() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        value = {"content": _random_value(rng), "more": _random_value(rng)}
        fast = redact_json(value)
        assert json.loads(fast) == redact(value), value


def test_category_classifier_config_forms() -> None:
    shorthand = CategoryClassifier.from_config(
        {"cyber": ["malware", "ransom ware"], "fraud": ["phishing"]}
    )
    assert shorthand.classify("Write MALWARE now") == "cyber"
    assert shorthand.classify("deploy ransom ware") == "cyber"
    assert shorthand.classify("malwares") is None  # whole words only
    assert shorthand.classify("a phishing email") == "fraud"
    full = CategoryClassifier.from_config(
        {
            "keywords": {"bio": ["virus"]},
            "default": "general",
            "classifier": lambda text: "chem" if "gas" in text else None,
        }
    )
    assert full.classify("nerve gas virus") == "chem"
    assert full.classify("a virus") == "bio" and full.classify("hello") == "general"
    assert CategoryClassifier.from_config(None) is None
    with pytest.raises(ValueError, match="unknown"):
        CategoryClassifier.from_config({"keywords": {}, "typo": 1})
    with pytest.raises(TypeError):
        CategoryClassifier.from_config({"classifier": "not callable"})


def test_goal_spec_from_any() -> None:
    class GoalObject:
        id, index, text, category = "set:3", 3, "do x", "misc"

    assert GoalSpec.from_any("plain") == GoalSpec(text="plain")
    assert GoalSpec.from_any(GoalObject()) == GoalSpec(
        text="do x", index=3, goal_id="set:3", category="misc"
    )
    assert GoalSpec.from_any({"goal": "g", "goal_index": "4", "goal_id": 9}) == GoalSpec(
        text="g", index=4, goal_id="9"
    )
    with pytest.raises(TypeError):
        GoalSpec.from_any({"prompt": "no text"})


def test_standalone_tracker(backend: SQLBackend, run_id: str) -> None:
    events: list[str] = []
    tracker = Tracker(backend, run_id)
    ctx = tracker.create_goal_result("goal", 0, goal_id="g0", category="c", metadata={"m": 1})
    assert tracker.create_goal_result("goal", 0) is ctx
    assert tracker.add_trace(ctx, "a", "A", {"n": 1}) == 0
    assert tracker.add_trace(ctx.result_id, "b", "B") == 1
    other = backend.create_result(run_id=run_id, goal="elsewhere", goal_index=1)
    assert tracker.add_trace(other, "c", "C") == 0  # a result created by another tracker
    assert tracker.finalize_goal(ctx, EvaluationStatusEnum.FAILED_JAILBREAK, "no", {"rows": 0})
    assert not tracker.finalize_goal(ctx.result_id, EvaluationStatusEnum.SUCCESSFUL_JAILBREAK)
    assert not tracker.finalize_goal("unknown", EvaluationStatusEnum.SUCCESSFUL_JAILBREAK)
    with pytest.raises(ValueError):
        tracker.finalize_goal(ctx, EvaluationStatusEnum.NOT_EVALUATED)
    tracker.flush()
    assert [t.step_name for t in backend.list_traces(result_id=ctx.result_id)] == ["a", "b"]
    stored = backend.get_result(ctx.result_id)
    assert stored.evaluation_status is EvaluationStatusEnum.FAILED_JAILBREAK
    assert stored.goal_id == "g0" and stored.goal_metadata == {"m": 1}
    assert events == [] and tracker.get_context_by_goal_id("g0") is ctx


def test_disabled_tracker_keeps_state_in_memory() -> None:
    tracker = Tracker(None, None)
    ctx = tracker.create_goal_result("goal", 5)
    assert ctx.result_id is None and tracker.add_trace(ctx, "a", "A") is None
    assert tracker.finalize_goal(ctx, EvaluationStatusEnum.ERROR_AGENT_RESPONSE)
    assert ctx.evaluation_status is EvaluationStatusEnum.ERROR_AGENT_RESPONSE


def test_event_payloads(backend: SQLBackend, run_id: str) -> None:
    seen: list[tuple[str, dict]] = []
    coordinator = TrackingCoordinator.create(
        backend,
        run_id,
        goals=[{"text": "t", "id": "x:1", "category": "c"}],
        event_bus=lambda name, payload: seen.append((name, payload)),
    )
    with coordinator.step_tracker.track_step("Gen", "STEP1") as trace_id:
        pass
    coordinator.finalize_all_goals([{"goal_index": 0, "success": True}])
    coordinator.finalize_pipeline([])
    by_name = {name: payload for name, payload in seen}
    ctx = coordinator.get_goal_context(0)
    assert by_name["goal_initialized"] == {
        "run_id": run_id,
        "result_id": ctx.result_id,
        "goal_index": 0,
        "goal_id": "x:1",
        "category": "c",
    }
    assert by_name["step_started"]["trace_id"] == trace_id
    assert by_name["step_finished"]["status"] == "COMPLETED"
    assert by_name["goal_finalized"]["evaluation_status"] == "SUCCESSFUL_JAILBREAK"
    assert by_name["run_finalized"]["status"] == "COMPLETED"
    assert by_name["run_finalized"]["summary"]["asr"] == 1.0


def test_get_backend_replaces_a_forked_copy(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'fork.db'}"
    parent = get_backend(url)
    monkeypatch.setattr(os, "getpid", lambda: parent.pid + 1)
    child = get_backend(url)
    assert child is not parent
    parent.close()
    child.close()


def test_pipeline_row_of_values_is_its_init() -> None:
    """`PipelineRow.of_values` (the fast constructor of the end of a run) takes the fields in
    declaration order and gives the row the dataclass's own `__init__` gives."""
    from tracking.rows import ROW_FIELDS, JudgeCell, PipelineRow

    values = {name: f"v-{name}" for name in ROW_FIELDS}  # a distinct value for every field
    values.update(goal_index=3, attempt_id=7, meta={"sample": 1}, pending=True,
                  conversation=({"role": "user", "content": "x"},), success=True, score=0.25,
                  judges={"refusal": JudgeCell(success=True, score=0.25)}, cost_usd=0.5)
    made = PipelineRow.of_values(tuple(values[name] for name in ROW_FIELDS))
    assert made == PipelineRow(**values)
    assert [getattr(made, name) for name in ROW_FIELDS] == list(values.values())
    with pytest.raises(TypeError):
        PipelineRow.of_values(tuple(values.values())[:-1])
