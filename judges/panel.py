"""A panel of judges that decide together on each response, under a declared combination rule."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, NamedTuple

from judges.base import ChatFn, Judge, ModelJudge, Verdict
from judges.combine import RULES, CombineRule, combine, combined_score
from judges.registry import JudgeError, JudgeSpec, build_judge, parse_spec


class PanelResult(NamedTuple):
    """`verdicts` (one per judge, in panel order), the combined `success` (None: no judge
    decided) and the combined `score` (mean of valid scores, or None). Unpacks as a 3-tuple."""

    verdicts: list[Verdict]
    success: bool | None
    score: float | None

    @property
    def cost_usd(self) -> float:
        return sum(v.cost_usd for v in self.verdicts)


class JudgePanel:
    """Judges + `rule` (any / majority / all) + `success_threshold`.

    `evaluate` runs all judges concurrently. Its `success` is the rule's combination, as stored
    in pipeline rows; `is_successful` then also applies the threshold to the combined score, as
    the architecture defines a successful row. Note that with binary judges the combined score is
    the fraction of judges saying yes, so a threshold above 0 can veto an `any` decision.

    Model calls can be injected: `chat` for every model judge, or `chats` per judge key (its
    label or name); otherwise each model judge calls `targets.chat` with its `model` option.
    """

    def __init__(
        self,
        judges: Sequence[Judge[Any] | JudgeSpec | Mapping[str, Any] | str],
        rule: CombineRule | str = "majority",
        success_threshold: float = 0.5,
        *,
        chat: ChatFn | None = None,
        chats: Mapping[str, ChatFn] | None = None,
    ) -> None:
        if not judges:
            raise JudgeError("a judge panel needs at least one judge")
        if rule not in RULES:
            raise JudgeError(f"unknown combine rule {rule!r}; use one of {', '.join(RULES)}")
        if not 0.0 <= success_threshold <= 1.0:
            raise JudgeError(f"success_threshold must be in [0, 1], got {success_threshold}")
        chats = dict(chats or {})
        built: list[Judge[Any]] = []
        for item in judges:
            if isinstance(item, Judge):
                built.append(item)
                continue
            spec = parse_spec(item)
            built.append(build_judge(spec, chat=chats.pop(spec.key, chat)))
        keys = [j.label for j in built]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise JudgeError(
                f"judge(s) {', '.join(map(repr, duplicates))} appear twice: give each a 'label'"
            )
        if chats:
            raise JudgeError(f"chats given for unknown judge(s): {', '.join(sorted(chats))}")
        self.judges = built
        self.rule: str = rule
        self.success_threshold = success_threshold

    @classmethod
    def from_config(cls, config: Any, **injected: Any) -> JudgePanel:
        """Build from any object or mapping with `judges`, `rule`, `success_threshold`
        (e.g. the flows' JudgePanelSpec)."""
        get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
        judges = get("judges")
        if not judges:
            raise JudgeError("a judge panel config needs a non-empty 'judges' list")
        return cls(judges, get("rule", "majority"), get("success_threshold", 0.5), **injected)

    @property
    def needs_model(self) -> bool:
        return any(isinstance(j, ModelJudge) for j in self.judges)

    async def evaluate(self, goal: str, prompt: str, response: str, *,
                       goal_id: str | None = None) -> PanelResult:
        """Every judge on one answer; a judge that finds its reference by the goal's id
        (`takes_goal_id`, e.g. copyright) gets `goal_id`."""
        verdicts = list(
            await asyncio.gather(*(_evaluate(j, goal, prompt, response, goal_id)
                                   for j in self.judges))
        )
        return PanelResult(verdicts, combine(verdicts, self.rule), combined_score(verdicts))

    def is_successful(self, success: bool | None, score: float | None) -> bool:
        """A row is successful when the panel said yes and the score (if any) clears the bar."""
        from tracking.success import is_successful  # the one rule; the store loads on first use

        return is_successful(success, score, self.success_threshold)


def _evaluate(judge: Judge[Any], goal: str, prompt: str, response: str,
              goal_id: str | None) -> Awaitable[Verdict]:
    if getattr(judge, "takes_goal_id", False):  # its `evaluate` takes goal_id= (copyright)
        evaluate: Any = judge.evaluate
        return evaluate(goal, prompt, response, goal_id=goal_id)  # type: ignore[no-any-return]
    return judge.evaluate(goal, prompt, response)
