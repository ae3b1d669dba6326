"""Measure a judge panel against human labels: every judge on every labelled item, concurrently,
then each judge's and the panel's agreement with the labels (`judges.metrics`).

A judge error (its model failed, its answer stayed unparseable, the budget ran out) is counted
apart and never taken as a verdict. Responses of encoded attacks are decoded first by the
caller's `decode` (the attacks registry's, as a run does), so the judges read what they would
read in a run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from judges.base import Verdict
from judges.citation import panel_digest, panel_key  # noqa: F401  (re-exported)
from judges.combine import combine
from judges.labels import LabelledItem, LabelSet
from judges.metrics import INTERVALS, Agreement, agreement, confusion, kappa_of
from judges.panel import JudgePanel

Decode = Callable[[LabelledItem, str], str]
PANEL = "panel"


@dataclass(frozen=True, kw_only=True)
class ItemResult:
    item: LabelledItem
    verdicts: dict[str, Verdict]
    panel: bool | None


@dataclass(frozen=True, kw_only=True)
class Validation:
    """Per judge (by key) and for the panel (`PANEL`): agreement with the labels."""

    source: str
    sha256: str
    rule: str
    judges: list[str]
    figures: dict[str, Agreement]
    results: list[ItemResult]
    cost_usd: float = 0.0
    notes: list[str] = field(default_factory=list)
    intervals: str = INTERVALS

    def disagreements(self, limit: int = 10) -> list[ItemResult]:
        """Items where the panel contradicts the label, most confident wrong verdicts first."""
        wrong = [r for r in self.results if r.panel is not None and r.panel != r.item.label]

        def confidence(r: ItemResult) -> float:
            scores = [v.score for v in r.verdicts.values() if v.ok and v.score is not None]
            mean = sum(scores) / len(scores) if scores else 0.5
            return abs(mean - 0.5)

        return sorted(wrong, key=confidence, reverse=True)[:limit]

    def as_dict(self) -> dict[str, Any]:
        """Figures per judge and panel, their confusion counts (positive = the judge says
        success) and, when the items come from several data sets, the same per data set."""
        out: dict[str, Any] = {
            "source": self.source, "sha256": self.sha256, "rule": self.rule,
            "judges": self.judges, "intervals": self.intervals, "cost_usd": self.cost_usd,
            "notes": self.notes,
            "figures": {name: fig.as_dict() for name, fig in self.figures.items()},
            "counts": {name: counts(fig) for name, fig in self.figures.items()},
        }
        datasets = list(dict.fromkeys(r.item.dataset for r in self.results if r.item.dataset))
        if len(datasets) > 1:
            out["datasets"] = {name: self.by_dataset(name) for name in datasets}
        return out

    def by_dataset(self, dataset: str) -> dict[str, dict[str, Any]]:
        """Each judge's and the panel's counts, accuracy and kappa on one data set's items
        (point figures: a bootstrap per set would cost seconds on large sets)."""
        results = [r for r in self.results if r.item.dataset == dataset]
        out: dict[str, dict[str, Any]] = {}
        for key in [*self.judges, PANEL]:
            pairs: list[tuple[bool, bool]] = []
            for r in results:
                decided = r.panel if key == PANEL else _decided(r.verdicts.get(key))
                if decided is not None:
                    pairs.append((r.item.label, decided))
            c = confusion(pairs)
            out[key] = {"n": c.n, "tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn,
                        "errors": len(results) - c.n,
                        "accuracy": (c.tp + c.tn) / c.n if c.n else None,
                        "kappa": kappa_of(c)}
        return out

    def items_json(self) -> list[dict[str, Any]]:
        return [
            {"id": r.item.id, "dataset": r.item.dataset, "label": r.item.label,
             "verdict": r.panel,
             "judges": {k: (v.success if v.ok else None) for k, v in r.verdicts.items()},
             "errors": {k: v.error for k, v in r.verdicts.items() if v.error}}
            for r in self.results
        ]


async def run_validation(panel: JudgePanel, labels: LabelSet, *, decode: Decode,
                         concurrency: int = 8, budget_usd: float | None = None) -> Validation:
    """Judge every item with every judge of `panel` (at most `concurrency` at once)."""
    limit = asyncio.Semaphore(max(1, concurrency))
    spent = [0.0]

    async def one(item: LabelledItem) -> ItemResult:
        response = decode(item, item.response)
        verdicts: dict[str, Verdict] = {}
        for judge in panel.judges:
            async with limit:
                if budget_usd is not None and spent[0] >= budget_usd:
                    verdicts[judge.label] = Verdict(judge=judge.label, success=None, score=None,
                                                    raw=None, error="budget exhausted")
                    continue
                verdict = await judge_item(judge, item, response)
            spent[0] += verdict.cost_usd
            verdicts[judge.label] = verdict
        return ItemResult(item=item, verdicts=verdicts,
                          panel=combine(verdicts.values(), panel.rule))

    results = list(await asyncio.gather(*(one(item) for item in labels.items)))
    return summarise(results, labels, panel.rule, [j.label for j in panel.judges], spent[0])


async def judge_item(judge: Any, item: LabelledItem, response: str) -> Verdict:
    """Call a judge as a run's evaluation step does: a judge that `takes_context` gets the
    context apart; any other reads the goal with its context before it (goals.with_context's
    layout; judges/ does not import goals/)."""
    verdict: Verdict
    if getattr(judge, "takes_context", False):
        verdict = await judge.evaluate(item.goal, item.judge_prompt, response,
                                       context=item.context or None)
        return verdict
    goal = f"{item.context.strip()}\n\n---\n\n{item.goal}" if item.context.strip() else item.goal
    verdict = await judge.evaluate(goal, item.judge_prompt, response)
    return verdict


def _decided(verdict: Verdict | None) -> bool | None:
    return bool(verdict.success) if verdict is not None and verdict.ok else None


def counts(figures: Agreement) -> dict[str, int]:
    """Confusion counts and errors (positive = the judge says success)."""
    c = figures.confusion
    return {"n": figures.n, "tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn,
            "errors": figures.errors}


def summarise(results: list[ItemResult], labels: LabelSet, rule: str, judges: list[str],
              cost_usd: float = 0.0) -> Validation:
    return Validation(source=labels.source, sha256=labels.sha256, rule=rule, judges=judges,
                      figures=figures_of(results, judges), results=results, cost_usd=cost_usd)


def figures_of(results: Sequence[ItemResult], judges: list[str]) -> dict[str, Agreement]:
    """Agreement of each judge (by key) and of the panel (`PANEL`) over `results`."""
    figures: dict[str, Agreement] = {}
    for key in judges:
        pairs, errors = [], 0
        for r in results:
            verdict = r.verdicts.get(key)
            if verdict is None or not verdict.ok:
                errors += 1
            else:
                pairs.append((r.item.label, bool(verdict.success)))
        figures[key] = agreement(pairs, errors)
    decided = [(r.item.label, r.panel) for r in results if r.panel is not None]
    figures[PANEL] = agreement(decided, len(results) - len(decided))
    return figures
