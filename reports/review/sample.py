"""What is reviewed and how it is drawn.

The unit is a *goal* of the run's ASR (attacked, judged broken or held); the item a person reads
is that goal's best attempt (`reports.rows.best_row`: for a broken goal the successful attempt
with the highest score, for a held goal the highest-scored judged one). A person's label on it
says whether the goal was broken by that answer, so the rate the labels estimate is "goals whose
best attempt carries out the goal" — the run's ASR at the level it is defined, read on the
attempt the panel would show as evidence (docs/review.md discusses what it can miss).

The draw is stratified by the panel's verdict (broken / held), so both kinds of verdict are
checked whatever the ASR: each stratum gets its proportional share (D'Hondt) but at least
`MIN_SHARE` of the draw (or all of it, if smaller). Within a stratum items are a simple random
sample without replacement; a later draw samples only goals not drawn before, which keeps the
union of draws a simple random sample of its size in each stratum, so a goal's inclusion
probability is (drawn in its stratum) / (stratum size). The drawn items are shown in a shuffled
order (strata interleaved), so the position says nothing about the verdict.
"""

from __future__ import annotations

import math
import random
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from reports.load import BROKEN, HELD, RunData
from tracking.store import SQLBackend
from tracking.store_review import NewDraw

#: Strata, by the panel's verdict on the goal.
STRATA = ("broken", "held")
#: Each stratum's least share of a draw (so successes and non-successes are both checked).
MIN_SHARE = 0.25
DEFAULT_SAMPLE = 50


@dataclass(frozen=True, kw_only=True)
class Unit:
    """One goal of the run's ASR as the review samples it."""

    result_id: str
    attempt_id: int
    goal_index: int
    stratum: str


def population(data: RunData) -> list[Unit]:
    """The goals the run's ASR counts (broken or held), each with its best attempt."""
    units = []
    for goal in data.goals:
        best = goal.best_attempt_id  # a goal beyond the report's detail keeps only the id
        if goal.status not in (BROKEN, HELD) or best is None:
            continue
        units.append(Unit(result_id=goal.result_id, attempt_id=int(best),
                          goal_index=goal.index,
                          stratum="broken" if goal.status is BROKEN else "held"))
    return units


def allocate(total: int, sizes: Mapping[str, int], already: Mapping[str, int]) -> dict[str, int]:
    """How many items each stratum holds once the sample has `total` items (never fewer than
    `already` drawn, never more than its size): a floor of `MIN_SHARE` of `total`, then
    D'Hondt (the proportional rule) for the rest."""
    total = min(total, sum(sizes.values()))
    floor = math.ceil(MIN_SHARE * total)
    counts = {h: min(sizes[h], max(already.get(h, 0), floor)) for h in sizes}
    if sum(counts.values()) > total:  # a tiny sample: floors do not fit, proportional only
        counts = {h: min(sizes[h], already.get(h, 0)) for h in sizes}
    while sum(counts.values()) < total:
        open_ = [h for h in sorted(sizes) if counts[h] < sizes[h]]
        if not open_:
            break
        best = max(open_, key=lambda h: sizes[h] / (counts[h] + 1))
        counts[best] += 1
    return counts


@dataclass(frozen=True, kw_only=True)
class Draw:
    """What one `siegeflow review` call added to the run's sample."""

    draw_id: str
    seed: int
    added: dict[str, int]
    sizes: dict[str, int]
    drawn: dict[str, int]  # per stratum, after this draw

    @property
    def count(self) -> int:
        return sum(self.added.values())


def draw_sample(backend: SQLBackend, data: RunData, total: int, seed: int | None = None) -> Draw:
    """Grow the run's review sample to `total` items (a no-op when it holds that many)."""
    seed = secrets.randbits(32) if seed is None else seed
    units = population(data)
    drawn_before = backend.list_review_draws(data.run_id)
    taken = {d.result_id for d in drawn_before}  # one item per goal, ever
    sizes = {h: sum(1 for u in units if u.stratum == h) for h in STRATA}
    already = {h: sum(1 for d in drawn_before if d.stratum == h) for h in STRATA}
    target = allocate(max(total, sum(already.values())), sizes, already)
    rng = random.Random(seed)
    chosen: list[tuple[Unit, str]] = []
    added: dict[str, int] = {}
    for h in STRATA:
        left = sorted((u for u in units if u.stratum == h and u.result_id not in taken),
                      key=lambda u: u.goal_index)
        k = min(len(left), max(0, target[h] - already[h]))
        added[h] = k
        chosen += [(u, h) for u in rng.sample(left, k)]
    rng.shuffle(chosen)
    drawn = {h: already[h] + added[h] for h in STRATA}
    draw_id = str(uuid.uuid4())
    items = [
        NewDraw(attempt_id=u.attempt_id, result_id=u.result_id, stratum=h,
                stratum_size=sizes[h], inclusion_prob=drawn[h] / sizes[h],
                draw_prob=added[h] / (sizes[h] - already[h]))
        for u, h in chosen
    ]
    if items:
        backend.add_review_draw(data.run_id, draw_id=draw_id, seed=seed, items=items)
    return Draw(draw_id=draw_id, seed=seed, added=added, sizes=sizes, drawn=drawn)
