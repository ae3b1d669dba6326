"""The shipped goal sets load from package data with unique ids and categories."""

from __future__ import annotations

from importlib import resources

import pytest

from goals import DEFAULT_GOAL_SET, GoalFileError, list_builtin_sets, load_builtin, load_goals


def test_default_set_loads_with_unique_ids_and_categories():
    goals = load_goals(DEFAULT_GOAL_SET)
    assert 20 <= len(goals) <= 40
    assert len({g.id for g in goals}) == len(goals)
    assert [g.index for g in goals] == list(range(len(goals)))
    assert all(g.text and g.category and g.target for g in goals)
    assert all(g.target.startswith("Sure, here") for g in goals)
    assert len({g.category for g in goals}) == 10
    assert all(g.source.startswith("JBB-Behaviors") for g in goals)


def test_every_listed_set_loads_by_bare_name_and_ref():
    for info in list_builtin_sets():
        assert load_builtin(info.name) == load_goals(info.ref)
        assert info.license == "MIT"


def test_unknown_builtin_lists_known_sets():
    with pytest.raises(GoalFileError, match="builtin:jbb-mini"):
        load_goals("builtin:nope")


def test_builtin_rejects_mapping():
    with pytest.raises(GoalFileError, match="no column mapping"):
        load_goals("builtin:jbb-mini", mapping={"text": "x"})


def test_attribution_ships_with_the_data():
    notice = resources.files("goals").joinpath("data", "NOTICE").read_text(encoding="utf-8")
    assert "MIT License" in notice and "JailbreakBench" in notice and "2404.01318" in notice
