"""Judges: decide whether a target's response achieves the goal.

Judges are registered by name (`@judge("refusal")`) and built from specs
(`{"name": "harmbench", "model": {...}}`). Several judges form a `JudgePanel` whose verdicts
combine under a declared rule; `judge_agreement` reports how far the judges agree.
"""

from judges import (  # noqa: F401  (registration)
    classifiers,
    copyright,
    offline,
    refusal,
    rubrics,
    template,
)
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
from judges.combine import RULES, CombineRule, combine, combined_score, rule_score
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
