"""The optimizer registry, option splitting and the attacker-output parser (no Prefect, no HTTP)."""

from __future__ import annotations

import pytest

from optimizers import Evaluation
from optimizers.library.common import parse_attack_json, rating
from optimizers.library.options import OptimizeOptions
from optimizers.library.pair import Pair, PairConfig
from optimizers.registry import (
    OptimizerError,
    build_optimizer,
    get_optimizer,
    list_optimizers,
    needs_attacker,
)
from tests.optimize.spec_optimizers import Sequential


def test_shipped_optimizers_are_listed_with_their_consumption_model() -> None:
    infos = {i.name: i for i in list_optimizers()}
    assert {"passthrough", "pair", "tap", "crescendo", "injection"} <= set(infos)
    assert infos["tap"].consumption == "parallel" and infos["injection"].consumption == "continuous"
    assert infos["pair"].consumption == "sequential" and infos["pair"].needs_attacker
    assert not infos["passthrough"].needs_attacker
    assert "n_streams" in infos["pair"].options and infos["pair"].description.startswith("PAIR")


def test_build_by_name_validates_the_config() -> None:
    pair = build_optimizer("pair", {"n_streams": 2})
    assert isinstance(pair, Pair) and pair.config == PairConfig(n_streams=2)
    with pytest.raises(OptimizerError, match="n_streams"):
        build_optimizer("pair", {"n_streams": 0})
    with pytest.raises(OptimizerError, match="unknown option .widht."):
        build_optimizer("tap", {"widht": 2})
    with pytest.raises(OptimizerError, match="unknown optimizer 'nope'"):
        get_optimizer("nope")


def test_build_by_import_path_passes_plain_keyword_options() -> None:
    optimizer = build_optimizer("tests.optimize.spec_optimizers:Sequential", {"max_runs": 7})
    assert isinstance(optimizer, Sequential) and optimizer.max_runs == 7
    assert not needs_attacker("tests.optimize.spec_optimizers:Sequential")
    with pytest.raises(OptimizerError, match="cannot build"):
        build_optimizer("tests.optimize.spec_optimizers:Sequential", {"bogus": 1})
    with pytest.raises(OptimizerError, match=r"not an optimizers\.Optimizer"):
        get_optimizer("tests.optimize.flowkit:run_flow")
    with pytest.raises(OptimizerError, match="cannot import"):
        get_optimizer("no_such_package.x:Y")
    with pytest.raises(OptimizerError, match=r"package\.module:Class"):
        get_optimizer("tests.optimize.flowkit:")


def test_options_split_flow_keys_from_optimizer_keys() -> None:
    options, own = OptimizeOptions.split({"max_runs": 3, "n_streams": 2, "wiring": "threads"})
    assert options.max_runs == 3 and options.wiring == "threads" and own == {"n_streams": 2}
    with pytest.raises(ValueError, match="wiring"):
        OptimizeOptions.split({"wiring": "processes"})


@pytest.mark.parametrize(
    ("text", "prompt"),
    [
        ('{"improvement": "x", "prompt": "p1"}', "p1"),
        ('Sure!\n```json\n{"improvement": "x", "prompt": "p2"}\n```\nGood luck', "p2"),
        ('Thinking {not json} then {"improvement": "a {brace}", "prompt": "p3"} done', "p3"),
        ('{"improvement": "x", "prompt": "line one\nline two"}', "line one\nline two"),
        (
            '{"improvement": "cut off", "prompt": "p5 with \\"quotes\\"", "extra": ',
            'p5 with "quotes"',
        ),
        ('{"outer": {"prompt": "nested"}, "prompt": "top"}', "top"),
    ],
)
def test_attacker_json_is_parsed_robustly(text: str, prompt: str) -> None:
    parsed = parse_attack_json(text)
    assert parsed is not None and parsed["prompt"] == prompt


@pytest.mark.parametrize(
    "text", ["", "no json here", '{"prompt": ""}', '{"improvement": "x"}', "[1, 2]"]
)
def test_unusable_attacker_output_is_none(text: str) -> None:
    assert parse_attack_json(text) is None


def test_rating_from_evaluation() -> None:
    assert rating(Evaluation(success=True, score=0.2)) == 10
    assert rating(Evaluation(success=False, score=0.0)) == 1
    assert rating(Evaluation(success=False, score=5 / 9)) == 6
    assert rating(Evaluation(success=None)) == 1 and rating("not an evaluation") == 1
