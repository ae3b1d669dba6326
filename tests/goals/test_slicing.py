"""Goal sets as users slice them (issue 21, part 5): a seeded sample stratified by category,
the slice described, bare dataset names, each subset's own count, benign sets flagged."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from goals import (
    DEFAULT_SUBSET,
    benign_goals_warning,
    get_preset,
    list_presets,
    load_goals,
)
from goals.spec import GoalsSpec


def test_sample_is_seeded_and_stratified_by_category() -> None:
    spec = GoalsSpec(source="builtin:jbb-mini", sample=10, seed=7)
    first, selection = spec.load_selected()
    again = GoalsSpec(source="builtin:jbb-mini", sample=10, seed=7).load()
    assert [g.id for g in first] == [g.id for g in again]  # same seed, same goals
    assert len(first) == 10
    # jbb-mini has 3 goals in each of 10 categories: a stratified 10 takes one of each.
    assert set(Counter(g.category for g in first).values()) == {1}
    assert [g.index for g in first] == sorted(g.index for g in first)  # set order kept
    other = GoalsSpec(source="builtin:jbb-mini", sample=10, seed=8).load()
    assert [g.id for g in other] != [g.id for g in first]
    assert selection.describe() == ("10 of 30 goals of builtin:jbb-mini, random sample "
                                    "stratified by category, seed 7")
    assert GoalsSpec(source="builtin:jbb-mini", sample=500).load_selected()[1].describe() == (
        "all 30 goals of builtin:jbb-mini")


def test_limit_is_described_as_the_first_n() -> None:
    goals, selection = GoalsSpec(source="builtin:jbb-mini", limit=10).load_selected()
    assert len(goals) == 10 and selection.subset
    assert selection.describe() == "first 10 of 30 goals of builtin:jbb-mini"
    assert not GoalsSpec(source="builtin:jbb-mini").load_selected()[1].subset


def test_the_yaml_goals_section_takes_sample_and_seed() -> None:
    spec = GoalsSpec.model_validate({"source": "builtin:jbb-mini", "sample": 5, "seed": 7})
    assert (spec.sample, spec.seed) == (5, 7)
    with pytest.raises(ValueError):
        GoalsSpec.model_validate({"source": "builtin:jbb-mini", "sample": 0})


@pytest.mark.parametrize("bare", sorted(DEFAULT_SUBSET))
def test_bare_dataset_names_resolve_to_their_default_subset(bare: str,
                                                            shared_data: Path) -> None:
    preset = get_preset(bare)
    assert preset.name == DEFAULT_SUBSET[bare] and preset.kind == "harmful"
    goals = load_goals(bare, search=shared_data)
    assert len(goals) == preset.count
    assert f"bare `{bare}`" in preset.description


def test_descriptions_give_each_subsets_own_count() -> None:
    for preset in list_presets():
        assert str(preset.count) in preset.description, preset.name


def test_benign_sets_as_attack_goals_are_warned_about() -> None:
    for name in ("xstest:safe", "jbb:benign"):
        note = benign_goals_warning(name)
        assert note is not None and name in note and "benign" in note
    assert benign_goals_warning("harmbench") is None
    assert benign_goals_warning("builtin:jbb-mini") is None
    assert benign_goals_warning("goals.csv") is None
