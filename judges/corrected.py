"""Which validation corrects a run's rates for judge error, and the stored blocks it gives.

Selection rule (docs/judges.md, "How to read a corrected ASR"): the panel's validation is the
one it cites (`judges.citation`: the latest `siegeflow judges validate` of the same panel in
the store, else the figures shipped with siegeflow). Within it, the counts of the data set
that is like the run's goals: a run whose goals come from a preset with its own validation
stratum (`harmbench:contextual` -> `harmbench-contextual`, `harmbench:standard` ->
`harmbench-standard`, `xstest:*` -> `xstest`) uses that data set's counts when the validation
has them out of sample; any other run uses the pooled out-of-sample counts.

The over-refusal detector (`tasks.benign`) is a measurement too: its rate is corrected the same
way with the detector's own validation (positive = it says "refusal"), found by its panel key
or, failing that, by the shipped entry whose `positive` is `refusal`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from judges.citation import (
    Lookup,
    _get,
    panel_digest,
    panel_key,
    panel_name,
    shipped_validations,
)
from judges.correction import METHOD, MIN_YOUDEN_LOW, Counts, correct
from tracking import OVER_REFUSAL
from tracking.summary import (
    CORRECTED,
    NO_COUNTS,
    NOT_VALIDATED,
    UNSUPPORTED,
    CorrectedRate,
    GoalCounts,
    JudgeCorrection,
    OverRefusal,
    RunSummary,
)

#: The over-refusal detector as `tasks.benign` builds it (refusal phrases only).
OVER_REFUSAL_SPEC: dict[str, Any] = {"name": "refusal", "label": OVER_REFUSAL,
                                     "min_words": 0, "max_echo_overlap": 1.0}
_HARMBENCH = re.compile(r"^harmbench:(?:(?:test|val)-)?(standard|contextual)$")


def stratum_of(goals_source: str | None) -> str | None:
    """The validation data set like a run's goals (its preset's stratum), or None."""
    source = (goals_source or "").strip().lower().removeprefix("preset:")
    if match := _HARMBENCH.match(source):
        return f"harmbench-{match.group(1)}"
    if source.startswith("xstest:"):  # safe prompts, or the unsafe contrast prompts
        return {"xstest:safe": "xstest:safe", "xstest:unsafe": "xstest:contrast"}.get(
            source, "xstest")
    return None


def _stratum_key(entry: Any, name: str) -> str:
    """A data set's key: its name, qualified by the prompt kind or the file when an entry
    breaks one data set down (XSTest: safe / contrast prompts, one file per model)."""
    prompts, file = _get(entry, "prompts"), _get(entry, "file")
    if isinstance(prompts, str) and prompts != "all":
        return f"{name}:{prompts}"
    if isinstance(file, str) and file != "all":
        return f"{name}/{file}"
    return name


@dataclass(frozen=True, kw_only=True)
class Stratum:
    """One labelled data set of a validation, with its counts."""

    name: str
    counts: Counts | None
    n: int | None = None
    short_source: str | None = None
    out_of_sample: bool = True


@dataclass(frozen=True, kw_only=True)
class ValidationCounts:
    """A validation as the correction reads it: pooled counts and the per-data-set ones."""

    panel: str
    origin: str
    source: str | None
    n: int | None
    positive: str
    counts: Counts | None
    datasets: dict[str, Stratum] = field(default_factory=dict)

    def choose(self, stratum: str | None, positive: str = "success"
               ) -> tuple[Counts | None, str | None, int | None]:
        """(counts, stratum used or None for pooled, n of the counts) by the selection rule,
        read with `positive` as the positive class (a validation stored with the other class
        as positive — "success" is the complement of "refusal" — is flipped)."""
        chosen = self.datasets.get(stratum or "")
        counts, used = self.counts, None
        if chosen is not None and chosen.counts is not None and chosen.out_of_sample:
            counts, used = chosen.counts, chosen.name
        if counts is None:
            return None, None, None
        if self.positive != positive:
            counts = counts.flipped()
        return counts, used, counts.positives + counts.negatives


def _counts(record: Any) -> Counts | None:
    cells = [_get(record, name) for name in ("tp", "fp", "tn", "fn")]
    if any(not isinstance(v, int) or isinstance(v, bool) for v in cells):
        return None
    tp, fp, tn, fn = cells
    return Counts(tp=tp, fp=fp, tn=tn, fn=fn)


def _strata(entries: Sequence[Any] | None) -> dict[str, Stratum]:
    out = {}
    for entry in entries or []:
        name = _get(entry, "name")
        if isinstance(name, str):
            key = _stratum_key(entry, name)
            out[key] = Stratum(name=key, counts=_counts(entry), n=_get(entry, "n"),
                                short_source=_get(entry, "short_source"),
                                out_of_sample=_get(entry, "out_of_sample") is not False)
    return out


def _of(record: Any, panel: str, origin: str, source: str | None) -> ValidationCounts:
    return ValidationCounts(panel=panel, origin=origin, source=source, n=_get(record, "n"),
                            positive=_get(record, "positive") or "success",
                            counts=_counts(record), datasets=_strata(_get(record, "datasets")))


def find_validation(judges: Sequence[Any], rule: str, lookup: Lookup | None = None,
                    *, positive: str | None = None) -> ValidationCounts | None:
    """The validation a panel cites (store first, then shipped); with `positive`, a shipped
    entry of that positive class stands in when no entry has the panel's key."""
    key = panel_key(judges, rule)
    name = panel_name(judges, rule)
    record = lookup(panel_digest(key)) if lookup is not None else None
    if record is not None:
        return _of(record, name, "this store", _get(record, "source"))
    shipped = shipped_validations()
    entry = shipped.get(key)
    if entry is None and positive is not None:
        entry = next((e for e in shipped.values() if e.get("positive") == positive), None)
    if entry is not None:
        return _of(entry, name, "shipped with siegeflow", entry.get("short_source"))
    return None


def _rate(x: int, n: int, counts: Counts) -> CorrectedRate:
    result = correct(x, n, counts)
    return CorrectedRate(x=x, n=n, value=result.value, low=result.low, high=result.high)


def correction(validation: ValidationCounts | None, stratum: str | None,
               overall: tuple[int, int], categories: Mapping[str, tuple[int, int]] | None = None,
               *, panel: str, positive: str = "success") -> JudgeCorrection:
    """The stored block: (positives, judged) overall and per category, corrected with the
    validation's counts chosen for `stratum` (see the module docstring)."""
    x, n = overall
    raw = CorrectedRate(x=x, n=n)
    if validation is None:
        return JudgeCorrection(status=NOT_VALIDATED, panel=panel, positive=positive,
                               overall=raw)
    counts, used, used_n = validation.choose(stratum, positive)
    base: dict[str, Any] = {"panel": validation.panel, "origin": validation.origin,
                            "source": validation.source, "positive": positive,
                            "validation_n": used_n if counts is not None else validation.n}
    if counts is None or counts.se is None or counts.sp is None:
        return JudgeCorrection(status=NO_COUNTS, overall=raw, **base)
    result = correct(x, n, counts)
    status = CORRECTED if result.supported else UNSUPPORTED
    by_category = ({name: _rate(cx, cn, counts) for name, (cx, cn) in categories.items()}
                   if categories and result.supported else {})
    return JudgeCorrection(
        status=status, stratum=used, tp=counts.tp, fp=counts.fp, tn=counts.tn, fn=counts.fn,
        sensitivity=counts.se, specificity=counts.sp, youden=result.youden,
        youden_low=result.youden_low, min_youden_low=MIN_YOUDEN_LOW, method=METHOD,
        overall=CorrectedRate(x=x, n=n, value=result.value, low=result.low, high=result.high),
        categories=by_category, **base,
    )


def _judged(c: RunSummary | GoalCounts) -> tuple[int, int]:
    return c.successful, c.successful + c.failed


def asr_correction(parameters: Mapping[str, Any] | None, summary: RunSummary,
                   lookup: Lookup | None = None) -> JudgeCorrection:
    """The run's ASR (overall and per category) corrected for its panel's judge error."""
    params = parameters or {}
    panel = params.get("judges") or {}
    judges = panel.get("judges") or ["refusal"]
    rule = panel.get("rule", "majority")
    stratum = stratum_of((params.get("goals") or {}).get("source"))
    return correction(find_validation(judges, rule, lookup), stratum, _judged(summary),
                      {name: _judged(c) for name, c in summary.categories.items()},
                      panel=panel_name(judges, rule))


def over_refusal_correction(parameters: Mapping[str, Any] | None, block: OverRefusal | None,
                            lookup: Lookup | None = None) -> JudgeCorrection | None:
    """The benign control set's false-refusal rate corrected for the refusal detector's error
    (positive = refusal, so the estimate is of the true refusal rate); None without one."""
    if block is None:
        return None
    # A benign control set is like XSTest's safe prompts unless it is XSTest itself.
    stratum = stratum_of(((parameters or {}).get("benign") or {}).get("source")) or "xstest:safe"
    validation = find_validation([OVER_REFUSAL_SPEC], "single", lookup, positive="refusal")
    return correction(validation, stratum, (block.refused, block.refused + block.answered),
                      panel=OVER_REFUSAL, positive="refusal")


def dataset_name(labels_source: str, split: str) -> str:
    """A labelled data set's name as validations record it: HarmBench's splits become
    `harmbench-standard` / `harmbench-contextual`; another file's `split` is kept as is."""
    if split and labels_source.lower().startswith("harmbench"):
        return f"harmbench-{split.lower()}"
    return split


def dataset_counts(validation: Any) -> list[dict[str, Any]]:
    """The panel's confusion counts per labelled data set (by item `split`) of a
    `judges.validation.Validation`: what `judges validate` stores next to the pooled counts.
    Empty when the items carry no split (the pooled counts are then the only stratum)."""
    from judges.metrics import confusion, kappa_of

    groups: dict[str, list[Any]] = {}
    for result in validation.results:
        if result.item.split:
            groups.setdefault(dataset_name(validation.source, result.item.split), []).append(result)
    in_sample = any("in-sample" in note for note in validation.notes)
    out = []
    for name, results in sorted(groups.items()):
        decided = [(r.item.label, bool(r.panel)) for r in results if r.panel is not None]
        c = confusion(decided)
        out.append({"name": name, "short_source": validation.source, "n": c.n,
                    "tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn,
                    "errors": len(results) - len(decided),
                    "accuracy": (c.tp + c.tn) / c.n if c.n else None, "kappa": kappa_of(c),
                    "out_of_sample": not in_sample})
    return out
