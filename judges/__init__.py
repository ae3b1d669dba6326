"""Judges: decide whether a target's response achieves the goal.

Judges are registered by name (`@judge("refusal")`) and built from specs
(`{"name": "harmbench", "model": {...}}`). Several judges form a `JudgePanel` whose verdicts
combine under a declared rule; `judge_agreement` reports how far the judges agree.

The shipped judges register when the registry is first read (`judges.registry`), and the names
below load on first use (PEP 562): `runs list` and `runs show` read `judges.citation` and
`judges.combine` without importing every judge, their pydantic configs and `targets`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Eager: the function `combine` must win over the submodule of the same name.
from judges.combine import RULES, CombineRule, combine, combined_score, rule_score

if TYPE_CHECKING:
    from judges.agreement import cohen_kappa, fleiss_kappa, judge_agreement, rows_by_judge
    from judges.base import (
        ChatFn,
        CompletionLike,
        Judge,
        JudgeConfig,
        JudgeParseError,
        ModelJudge,
        ModelJudgeConfig,
        Verdict,
        chat_for_model,
    )
    from judges.classifiers import HARMBENCH_MARKER, JAILBREAKBENCH_MARKER
    from judges.panel import JudgePanel, PanelResult
    from judges.refusal import REFUSAL_PHRASES, find_refusal
    from judges.registry import (
        JudgeError,
        JudgeInfo,
        JudgeSpec,
        build_judge,
        get_judge,
        judge,
        list_judges,
        parse_spec,
    )
    from judges.rubrics import (
        PAIR_MARKER,
        STRONGREJECT_MARKER,
        parse_pair_rating,
        parse_strongreject,
        strongreject_score,
    )

_HOMES: dict[str, str] = {  # exported name -> the module defining it
    "cohen_kappa": "judges.agreement",
    "fleiss_kappa": "judges.agreement",
    "judge_agreement": "judges.agreement",
    "rows_by_judge": "judges.agreement",
    "ChatFn": "judges.base",
    "CompletionLike": "judges.base",
    "Judge": "judges.base",
    "JudgeConfig": "judges.base",
    "JudgeParseError": "judges.base",
    "ModelJudge": "judges.base",
    "ModelJudgeConfig": "judges.base",
    "Verdict": "judges.base",
    "chat_for_model": "judges.base",
    "HARMBENCH_MARKER": "judges.classifiers",
    "JAILBREAKBENCH_MARKER": "judges.classifiers",
    "JudgePanel": "judges.panel",
    "PanelResult": "judges.panel",
    "REFUSAL_PHRASES": "judges.refusal",
    "find_refusal": "judges.refusal",
    "JudgeError": "judges.registry",
    "JudgeInfo": "judges.registry",
    "JudgeSpec": "judges.registry",
    "build_judge": "judges.registry",
    "get_judge": "judges.registry",
    "judge": "judges.registry",
    "list_judges": "judges.registry",
    "parse_spec": "judges.registry",
    "PAIR_MARKER": "judges.rubrics",
    "STRONGREJECT_MARKER": "judges.rubrics",
    "parse_pair_rating": "judges.rubrics",
    "parse_strongreject": "judges.rubrics",
    "strongreject_score": "judges.rubrics",
}

__all__ = [
    "HARMBENCH_MARKER",
    "JAILBREAKBENCH_MARKER",
    "PAIR_MARKER",
    "REFUSAL_PHRASES",
    "RULES",
    "STRONGREJECT_MARKER",
    "ChatFn",
    "CombineRule",
    "CompletionLike",
    "Judge",
    "JudgeConfig",
    "JudgeError",
    "JudgeInfo",
    "JudgePanel",
    "JudgeParseError",
    "JudgeSpec",
    "ModelJudge",
    "ModelJudgeConfig",
    "PanelResult",
    "Verdict",
    "build_judge",
    "chat_for_model",
    "cohen_kappa",
    "combine",
    "combined_score",
    "find_refusal",
    "fleiss_kappa",
    "get_judge",
    "judge",
    "judge_agreement",
    "list_judges",
    "parse_pair_rating",
    "parse_spec",
    "parse_strongreject",
    "rows_by_judge",
    "rule_score",
    "strongreject_score",
]


if not TYPE_CHECKING:  # hidden from mypy, so it checks each `from judges import X` above

    def __getattr__(name: str) -> object:
        """Import the module defining an exported name on first access, then keep the name."""
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module 'judges' has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
