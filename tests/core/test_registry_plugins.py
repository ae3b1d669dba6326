"""Plugins without touching siegeflow: `module:Class` names and entry points of installed
distributions resolve for attacks, judges and optimizers alike; bad names fail clearly."""

from __future__ import annotations

import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import core.registry
from attacks import TechniqueError, get_technique
from attacks.baseline import Baseline
from judges import JudgeError, Verdict, build_judge, get_judge, list_judges
from judges.base import Judge
from optimizers.registry import OptimizerError, build_optimizer, get_optimizer
from tests.optimize.spec_optimizers import Sequential


class AlwaysYes(Judge):
    """Says every answer is a success (a plugin judge for these tests)."""

    async def evaluate(self, goal: str, prompt: str, response: str) -> Verdict:
        return Verdict(judge=self.label, success=True, score=1.0, raw=None, error=None)


class NotAJudge:
    pass


def test_module_class_names_resolve_in_every_family() -> None:
    judge_cls = get_judge(f"{__name__}:AlwaysYes")
    assert judge_cls is AlwaysYes and judge_cls.name == f"{__name__}:AlwaysYes"
    assert build_judge(f"{__name__}:AlwaysYes").label == f"{__name__}:AlwaysYes"
    assert get_technique("attacks.baseline:Baseline") is Baseline
    assert Baseline.name == "baseline"  # a registered class keeps its own name
    assert get_optimizer("tests.optimize.spec_optimizers:Sequential") is Sequential


def test_a_fake_distributions_entry_point_is_a_judge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real (if tiny) installed distribution: a dist-info folder with entry_points.txt."""
    (tmp_path / "yes_plugin.py").write_text(textwrap.dedent('''
        from judges import Verdict
        from judges.base import Judge

        class Yes(Judge):
            """Always yes."""

            async def evaluate(self, goal, prompt, response):
                return Verdict(judge=self.label, success=True, score=1.0, raw=None, error=None)
    '''))
    info = tmp_path / "yes_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: yes-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[siegeflow.judges]\nalways-yes = yes_plugin:Yes\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    cls = get_judge("always-yes")
    assert cls.__module__ == "yes_plugin" and cls.name == "always-yes"
    assert "always-yes" in {info.name for info in list_judges()}
    assert "always-yes" in str(pytest.raises(JudgeError, get_judge, "always-ye").value)


def test_monkeypatched_entry_points_resolve_for_techniques_and_optimizers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    points = {
        "siegeflow.attacks": [EntryPoint("plain", "attacks.baseline:Baseline", "siegeflow.attacks")],
        "siegeflow.optimizers": [
            EntryPoint("seq", "tests.optimize.spec_optimizers:Sequential", "siegeflow.optimizers"),
            EntryPoint("broken", "no_such_module_xyz:Thing", "siegeflow.optimizers"),
        ],
    }
    monkeypatch.setattr(core.registry, "entry_points", lambda group: points.get(group, []))
    assert get_technique("plain") is Baseline
    assert isinstance(build_optimizer("seq", {"max_runs": 2}), Sequential)
    with pytest.raises(OptimizerError, match="plugin 'broken'.*siegeflow.optimizers.*cannot be loaded"):
        get_optimizer("broken")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", r"unknown judge 'nope'; known judges: .*refusal.*module:Class"),
        ("judges.refusal:", r"must look like 'package.module:Class'"),
        ("no_such_package_xyz:Judge", "cannot import 'no_such_package_xyz'"),
        ("judges.refusal:NoSuchClass", "has no attribute 'NoSuchClass'"),
        (f"{__name__}:NotAJudge", r"is not a judges\.Judge subclass"),
    ],
)
def test_bad_names_say_what_is_wrong(name: str, message: str) -> None:
    with pytest.raises(JudgeError, match=message):
        get_judge(name)


def test_a_technique_path_to_a_judge_is_refused() -> None:
    with pytest.raises(TechniqueError, match=r"not an attacks\.Technique subclass"):
        get_technique(f"{__name__}:AlwaysYes")
