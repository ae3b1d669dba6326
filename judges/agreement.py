"""Inter-judge agreement: Cohen's kappa for two judges, Fleiss' kappa for three or more.

A report that uses several judges should say how far they agree: a high attack success rate
under one judge that the others contradict is not a finding.

Degenerate case, by definition here: when chance agreement is 1 (every judge gave every item the
same single label) kappa's formula is 0/0; we return 1.0, since the observed agreement is then
perfect. Items a judge could not decide (error or None) are dropped: each kappa uses only the
items that every judge it compares decided.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

from tracking.rows import JudgeCell, PipelineRow

_EPS = 1e-12


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' labels for the same items (same order, no missing values)."""
    if len(a) != len(b):
        raise ValueError(f"label sequences differ in length: {len(a)} != {len(b)}")
    if not a:
        raise ValueError("cohen_kappa needs at least one item")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[label] * count_b[label] for label in count_a) / (n * n)
    if expected >= 1 - _EPS:
        return 1.0
    return (observed - expected) / (1 - expected)


def fleiss_kappa(matrix: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an items x categories matrix of counts; every row must sum to the same
    number of raters (at least 2)."""
    if not matrix:
        raise ValueError("fleiss_kappa needs at least one item")
    width = len(matrix[0])
    raters = sum(matrix[0])
    for i, row in enumerate(matrix):
        if len(row) != width:
            raise ValueError(f"row {i} has {len(row)} categories, expected {width}")
        if any(count < 0 for count in row):
            raise ValueError(f"row {i} has a negative count")
        if sum(row) != raters:
            raise ValueError(f"row {i} sums to {sum(row)} raters, expected {raters}")
    if raters < 2:
        raise ValueError("fleiss_kappa needs at least 2 raters per item")
    items = len(matrix)
    proportions = [sum(row[j] for row in matrix) / (items * raters) for j in range(width)]
    per_item = [
        (sum(count * count for count in row) - raters) / (raters * (raters - 1)) for row in matrix
    ]
    observed = sum(per_item) / items
    expected = sum(p * p for p in proportions)
    if expected >= 1 - _EPS:
        return 1.0
    return (observed - expected) / (1 - expected)


def label_of(value: Any) -> Hashable | None:
    """A judge's decision as a label: a bool, a Verdict or a `{"success", "error"}` row cell;
    None when the judge did not decide."""
    label: Hashable | None = value
    if isinstance(value, Mapping):
        label = None if value.get("error") else value.get("success")
    elif hasattr(value, "success") and hasattr(value, "error"):
        label = None if value.error else value.success
    return label


def judge_agreement(
    rows_by_judge: Mapping[str, Mapping[Hashable, Any] | Sequence[Any]],
) -> dict[str, Any]:
    """Pairwise Cohen's kappa for every pair of judges, and Fleiss' kappa over all of them
    (when there are at least 3).

    `rows_by_judge` maps judge -> {item key: decision} or judge -> [decision per item] (aligned
    by position). A decision is a bool, a Verdict or a row cell (see `label_of`). Each entry
    reports `kappa` (None when the compared judges share no decided item), `n` (items used) and
    `observed_agreement`.
    """
    labels = {name: _keyed(values) for name, values in rows_by_judge.items()}
    names = sorted(labels)
    pairwise: dict[str, dict[str, Any]] = {}
    for first, second in combinations(names, 2):
        common = _common([labels[first], labels[second]])
        a = [labels[first][key] for key in common]
        b = [labels[second][key] for key in common]
        pairwise[f"{first}|{second}"] = {
            "judges": [first, second],
            "n": len(common),
            "kappa": cohen_kappa(a, b) if common else None,
            "observed_agreement": (
                sum(x == y for x, y in zip(a, b, strict=True)) / len(common) if common else None
            ),
        }
    fleiss: dict[str, Any] | None = None
    if len(names) >= 3:
        common = _common([labels[name] for name in names])
        categories = sorted({labels[name][key] for name in names for key in common}, key=repr)
        matrix = [
            [sum(labels[name][key] == category for name in names) for category in categories]
            for key in common
        ]
        fleiss = {"judges": names, "n": len(common),
                  "kappa": fleiss_kappa(matrix) if common else None}
    return {"judges": names, "pairwise": pairwise, "fleiss": fleiss}


def rows_by_judge(
    rows: Iterable[PipelineRow | Mapping[str, Any]],
) -> dict[str, dict[Hashable, JudgeCell]]:
    """Pipeline rows (or their spec-000 dicts) -> the input of `judge_agreement`, keyed by
    (result_id, prompt_hash) when the row has them, else by position."""
    out: dict[str, dict[Hashable, JudgeCell]] = {}
    for position, given in enumerate(rows):
        row = PipelineRow.of(given)
        key: Hashable = (
            (row.result_id, row.prompt_hash)
            if row.result_id is not None and row.prompt_hash else position
        )
        for name, cell in row.judges.items():
            out.setdefault(name, {})[key] = cell
    return out


def _keyed(values: Mapping[Hashable, Any] | Sequence[Any]) -> dict[Hashable, Hashable]:
    items = values.items() if isinstance(values, Mapping) else enumerate(values)
    return {key: label for key, value in items if (label := label_of(value)) is not None}


def _common(tables: list[dict[Hashable, Hashable]]) -> list[Hashable]:
    """Keys decided by every table, in the first table's order."""
    return [key for key in tables[0] if all(key in table for table in tables[1:])]
