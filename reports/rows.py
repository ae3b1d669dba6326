"""Pipeline rows rebuilt from the store: one per attempt, with its completion and verdicts.

The one place rows are built (ARCHITECTURE.md, "Pipeline rows"): the flows finalize goals from
them, and the CLI and reports read them. Rows derive from what is recorded, never from
in-memory step outputs, so a resumed run and a fresh run finalize from exactly the same data.
Prefect-free: `siegeflow export` and `report` must not pay Prefect's import time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from math import copysign
from typing import TYPE_CHECKING, Any

from judges import combine, rule_score
from tracking import OVER_REFUSAL as _OVER_REFUSAL
from tracking import (
    AttemptRecord,
    JudgmentRecord,
    ResultRecord,
    RunRecord,
    RunSummary,
    is_benign,
)
from tracking.rows import JudgeCell, PipelineRow
from tracking.success import RowOutcome, classify_row
from tracking.store import SQLBackend

if TYPE_CHECKING:
    from reports.digest import RunDigest


@dataclass(frozen=True, kw_only=True)
class RunPanel:
    """Which judges decided a run and how, read back from its record: the one place a run's
    parameters are read for that (HTML report, `runs show`, the CLI after a run)."""

    judge_keys: list[str]
    rule: str
    threshold: float

    @classmethod
    def of(cls, run: RunRecord) -> RunPanel:
        """The keys are those the flow recorded in its summary (`judge_keys`): an optimize run
        whose harness brings its own success check is decided by that check, not by the panel
        in its parameters. A run without a summary yet falls back to the panel's judges."""
        panel = (run.parameters or {}).get("judges") or {}
        recorded = RunSummary.parse(run.summary).judge_keys
        if recorded:
            keys = list(recorded)
        else:
            keys = [str(j.get("label") or j.get("name")) for j in panel.get("judges") or []]
        return cls(judge_keys=keys or ["refusal"], rule=str(panel.get("rule") or "majority"),
                   threshold=float(panel.get("success_threshold", 0.5)))


def run_rows(
    backend: SQLBackend, run: RunRecord, results: list[ResultRecord] | None = None
) -> tuple[RunPanel, list[PipelineRow]]:
    """A recorded run's panel and its rows, counted with the judges that decided it."""
    panel = RunPanel.of(run)
    return panel, build_rows(backend, run.id, panel.judge_keys, panel.rule, results)


#: The judge key of a benign control prompt's verdict (defined with `BENIGN` in tracking).
OVER_REFUSAL = _OVER_REFUSAL


def prompt_text(messages: Any) -> str:
    """The last user message of a stored prompt (what a judge and a reader see)."""
    for message in reversed(list(messages or [])):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


@dataclass(frozen=True, kw_only=True)
class Recorded:
    """What a run has recorded — goals, attempts, verdicts — read once for everything that
    needs it at the end of a run (rows, spend, warnings, the report)."""

    results: list[ResultRecord]
    attempts: list[AttemptRecord]
    judgments: list[JudgmentRecord]

    @classmethod
    def load(cls, backend: SQLBackend, run_id: str,
             results: list[ResultRecord] | None = None) -> Recorded:
        return cls(results=results if results is not None else backend.list_results(run_id),
                   attempts=backend.list_attempts(run_id),
                   judgments=backend.list_judgments(run_id=run_id))


def build_rows(
    backend: SQLBackend, run_id: str, judge_keys: list[str], rule: str,
    results: list[ResultRecord] | None = None,
) -> list[PipelineRow]:
    """Rows of a run's attempts; only the panel's judges count towards `success`."""
    return rows_of(Recorded.load(backend, run_id, results), judge_keys, rule)


def rows_of(recorded: Recorded, judge_keys: list[str], rule: str) -> list[PipelineRow]:
    """Rows of recorded attempts; only the panel's judges count towards `success`.

    A benign control goal's rows (`kind` "benign") are decided by the over-refusal judge alone:
    `success` then means the prompt was answered, not refused (`tasks.benign`)."""
    by_id = {r.id: r for r in recorded.results}
    verdicts: dict[int, dict[str, JudgmentRecord]] = defaultdict(dict)
    for j in recorded.judgments:
        verdicts[j.attempt_id][j.judge] = j
    return [row_of(attempt, by_id[attempt.result_id], verdicts.get(attempt.id or 0, {}),
                   judge_keys, rule)
            for attempt in recorded.attempts]


def row_of(attempt: AttemptRecord, result: ResultRecord, mine: dict[str, JudgmentRecord],
           judge_keys: list[str], rule: str) -> PipelineRow:
    """One attempt's row, from its goal's result and its verdicts by judge (`rows_of`)."""
    goal = _Goal.of(result, judge_keys, rule)
    return goal.row(
        attempt.id, attempt.technique, attempt.variant, attempt.meta, attempt.prompt,
        attempt.prompt_hash, attempt.response, attempt.decoded_response, attempt.error,
        attempt.error_kind, attempt.cost_usd, attempt.completed_at is None,
        {key: (JudgeCell(success=j.success, score=j.score, error=j.error), j.cost_usd)
         for key, j in mine.items() if key in goal.keys})


def _decided(cells: tuple[JudgeCell, ...], how: str) -> tuple[bool | None, float | None]:
    """The combined verdict and score of a complete set of verdicts (`combine`, `rule_score`),
    looked up when the same set was decided before: a run's attempts share a handful of
    verdict sets (one judge: yes or no), and deciding each again was a good part of building
    a row. Only sets whose equal values are also the same values are looked up (a bool or
    None, a float or None, no -0.0: `True == 1` and `0.0 == -0.0`, yet the rule tells them
    apart or hands them back)."""
    if all((c.success is None or type(c.success) is bool)
           and (c.score is None or (type(c.score) is float and (c.score or copysign(1.0, c.score) > 0)))
           for c in cells):
        return _decided_before(cells, how)
    return combine(cells, how), rule_score(cells, how)


@lru_cache(maxsize=4096)
def _decided_before(cells: tuple[JudgeCell, ...], how: str) -> tuple[bool | None, float | None]:
    return combine(cells, how), rule_score(cells, how)


@dataclass(frozen=True)
class _Goal:
    """What a goal gives each of its rows, worked out once per goal: its fields, and the
    judges that decide it (a benign control goal: the over-refusal judge alone, rule "any")."""

    fields: tuple[str, int, str | None, str, str | None]  # goal, index, id, result id, category
    keys: tuple[str, ...]
    how: str
    kind: str

    @classmethod
    def of(cls, result: ResultRecord, judge_keys: list[str], rule: str) -> _Goal:
        fields = (result.goal, result.goal_index, result.goal_id, result.id, result.category)
        if is_benign(result.goal_metadata):
            return cls(fields, (OVER_REFUSAL,), "any", "benign")
        return cls(fields, tuple(judge_keys), rule, "attack")

    def row(self, attempt_id: int | None, technique: str, variant: str, meta: Any, prompt: Any,
            prompt_hash: str, response: str | None, decoded: str | None, error: str | None,
            error_kind: str | None, cost_usd: float | None, pending: bool,
            mine: Mapping[str, tuple[JudgeCell, float | None]]) -> PipelineRow:
        """The row of one attempt of this goal (the one place a row is made: `row_of`,
        `_tuple_rows`); `mine`: its verdicts by judge, with each judgment's cost."""
        keys = self.keys
        judged = [mine[key] for key in keys if key in mine]
        complete = not pending and error is None and len(judged) == len(keys)
        success, score = _decided(tuple(c for c, _ in judged), self.how) if complete else (
            None, None)
        return PipelineRow.of_values((  # in `ROW_FIELDS` order (a test holds them to it)
            *self.fields, attempt_id, technique, variant, meta or {}, self.kind, prompt_text(prompt),
            tuple(m for m in prompt if isinstance(m, dict)) if isinstance(prompt, list) else (),
            prompt_hash, response, decoded, error, error_kind, pending,
            {key: mine[key][0] for key in keys if key in mine}, success, score,
            (cost_usd or 0.0) + sum(c or 0.0 for _, c in judged),
        ))


def _page_rows(backend: SQLBackend, attempts: list[AttemptRecord],
               by_id: Mapping[str, ResultRecord], judge_keys: list[str],
               rule: str, judgments: list[JudgmentRecord] | None = None) -> list[PipelineRow]:
    """Rows of these attempts; `judgments`: theirs, already read (else read by id)."""
    from tracking.store_aggregates import judgments_of

    if judgments is None:
        judgments = judgments_of(backend, [a.id or 0 for a in attempts])
    verdicts: dict[int, dict[str, JudgmentRecord]] = defaultdict(dict)
    for j in judgments:
        verdicts[j.attempt_id][j.judge] = j
    return [row_of(a, by_id[a.result_id], verdicts.get(a.id or 0, {}), judge_keys, rule)
            for a in attempts if a.result_id in by_id]


def _tuple_rows(backend: SQLBackend, run_id: str, attempts: Sequence[Any],
                goals: Mapping[str, _Goal]) -> list[PipelineRow]:
    """`_page_rows` of a `row_pages` page, its verdicts read with it (`cells_of_page`): the
    same rows, built from the query's tuples (no model per attempt or judgment)."""
    from tracking.store_aggregates import cells_of_page

    verdicts: dict[int, dict[str, tuple[JudgeCell, float | None]]] = defaultdict(dict)
    for attempt_id, judge, success, score, error, cost in cells_of_page(
            backend, run_id, [a[0] for a in attempts]):
        verdicts[attempt_id][judge] = (JudgeCell(success=success, score=score, error=error), cost)
    out: list[PipelineRow] = []
    for (attempt_id, result_id, technique, variant, meta, prompt, prompt_hash, response,
         decoded, error, error_kind, cost, pending) in attempts:
        goal = goals.get(result_id)
        if goal is not None:
            out.append(goal.row(attempt_id, technique, variant, meta, prompt, prompt_hash,
                                response, decoded, error, error_kind, cost, bool(pending),
                                verdicts.get(attempt_id, {})))
    return out


def goal_groups(backend: SQLBackend, run_id: str, results: list[ResultRecord],
                judge_keys: list[str], rule: str, page: int | None = None,
                ) -> Iterator[tuple[ResultRecord, list[PipelineRow]]]:
    """Each goal with its rows (attempt order), one goal at a time, in the order of `results`:
    the rows of one goal are in memory at once, never the run's (issue 23).

    Consecutive goals of at most `page` attempts in all (counted first, one GROUP BY) are read
    together, a batch per query (`_goal_batches`): 50,000 goals of 4 attempts were 100,000
    round trips. A goal of more than `page` attempts is read alone, a page at a time."""
    from tracking.store_aggregates import PAGE, attempts_per_result, row_pages, rows_of_results

    size = page or PAGE
    counts = attempts_per_result(  # a few goals (`runs show --goal`): theirs, not the run's
        backend, run_id, [r.id for r in results] if len(results) <= GOALS_PER_QUERY else None)
    for batch in _goal_batches(results, counts, size):
        if len(batch) == 1 and counts.get(batch[0].id, 0) > size:
            result = batch[0]
            goal = {result.id: _Goal.of(result, judge_keys, rule)}
            rows: list[PipelineRow] = []
            for attempts in row_pages(backend, run_id, result.id, size):
                rows += _tuple_rows(backend, run_id, attempts, goal)
            yield result, rows
            continue
        goals = {r.id: _Goal.of(r, judge_keys, rule) for r in batch}
        read = [r.id for r in batch if counts.get(r.id, 0)]
        by_goal: dict[str | None, list[PipelineRow]] = defaultdict(list)
        if read:
            for row in _tuple_rows(backend, run_id, rows_of_results(backend, run_id, read),
                                   goals):
                by_goal[row.result_id].append(row)
        for result in batch:
            yield result, by_goal.pop(result.id, [])
        del by_goal


def _goal_batches(results: list[ResultRecord], counts: Mapping[str, int],
                  size: int) -> Iterator[list[ResultRecord]]:
    """`results` cut, in order, into runs of goals of at most `size` attempts in all and at
    most `GOALS_PER_QUERY` goals with attempts (the `IN` list); a bigger goal comes alone."""
    batch: list[ResultRecord] = []
    attempts = ids = 0
    for result in results:
        n = counts.get(result.id, 0)
        if batch and (attempts + n > size or ids + (n > 0) > GOALS_PER_QUERY):
            yield batch
            batch, attempts, ids = [], 0, 0
        batch.append(result)
        attempts += n
        ids += n > 0
    if batch:
        yield batch


#: Goals read in one query by `goal_groups` at most (the length of its `IN` list: far below
#: SQLite's 32,766 parameters).
GOALS_PER_QUERY = 500


def stream_rows(backend: SQLBackend, run_id: str, results: list[ResultRecord],
                judge_keys: list[str], rule: str, page: int | None = None,
                ) -> Iterator[PipelineRow]:
    """The run's rows in attempt order (as `rows_of` lists them), a page at a time."""
    from tracking.store_aggregates import PAGE, row_pages

    goals = {r.id: _Goal.of(r, judge_keys, rule) for r in results}
    for attempts in row_pages(backend, run_id, None, page or PAGE):
        yield from _tuple_rows(backend, run_id, attempts, goals)


def rank(row: PipelineRow, threshold: float) -> tuple[int, float]:
    """The one best-row ranking (HTML report, Prefect artifacts, terminal): successful rows
    first, then judged ones, then errors; higher score first within."""
    return rank_of(row, classify_row(row, threshold))


def rank_of(row: PipelineRow, outcome: RowOutcome) -> tuple[int, float]:
    """`rank` of a row whose outcome (`classify_row`) is known already."""
    tier = {RowOutcome.SUCCESSFUL: 3, RowOutcome.FAILED: 2}.get(
        outcome, 1 if row.response else 0
    )
    return tier, row.score or 0.0


def best_row(rows: list[PipelineRow], threshold: float,
             ranks: Sequence[tuple[int, float]] | None = None) -> PipelineRow | None:
    """The attempt that best shows a goal's outcome (first of equals, in attempt order);
    `ranks`: the rows' `rank`s, when known already."""
    best: PipelineRow | None = None
    best_rank = (-1, 0.0)
    for i, row in enumerate(rows):
        r = ranks[i] if ranks is not None else rank(row, threshold)
        if r > best_rank:
            best, best_rank = row, r
    return best


def best_rows(rows: list[PipelineRow], threshold: float) -> dict[str, PipelineRow]:
    """Per result id: the row `best_row` picks among that goal's rows."""
    by_result: dict[str, list[PipelineRow]] = defaultdict(list)
    for row in rows:
        by_result[row.result_id or ""].append(row)
    return {key: best for key, mine in by_result.items() if (best := best_row(mine, threshold))}


class StoredRows:
    """A run's rows, never held: each iteration reads them from the store a page at a time
    (`stream_rows`). What `finish_run` hands callables written for the run's final rows (a
    flow's `extra`, `stop_reason`, which take an `Iterable[PipelineRow]`), so none of them
    holds the run. Re-iterable and sized; not a sequence (no indexing).

    `digest`: these same rows already reduced goal by goal (`finish_run`'s), for a callable
    whose figure the digest has (the Best-of-N curve): reading the rows again costs as much
    as the whole goal-by-goal pass did."""

    def __init__(self, backend: SQLBackend, run_id: str, results: list[ResultRecord],
                 judge_keys: list[str], rule: str, count: int,
                 digest: RunDigest | None = None) -> None:
        self._args = (backend, run_id, results, judge_keys, rule)
        self._count = count
        self.digest = digest

    def __iter__(self) -> Iterator[PipelineRow]:
        return stream_rows(*self._args)

    def __len__(self) -> int:
        return self._count


def best_rows_of(backend: SQLBackend, run: RunRecord,
                 results: list[ResultRecord]) -> list[PipelineRow]:
    """Each goal's best row (`best_row`), in the order of `results`: the attempt the end of the
    run stored as the goal's best (`tracking.best_attempts`), read by id with its verdicts, so
    O(goals) rows whatever the run's size; a goal without one stored (a run finished before
    that was stored) is decided from its attempts (`scanned_best_row`)."""
    from tracking.best_attempts import stored_best
    from tracking.store_aggregates import attempts_by_id

    panel = RunPanel.of(run)
    stored = stored_best(results)
    by_id = {r.id: r for r in results}
    found = {row.attempt_id: row for row in _page_rows(
        backend, attempts_by_id(backend, [i for i in stored.values() if i is not None]),
        by_id, panel.judge_keys, panel.rule)}
    out: list[PipelineRow] = []
    for result in results:
        if result.id in stored and (stored[result.id] is None or stored[result.id] in found):
            best = found.get(stored[result.id])
        else:
            best = scanned_best_row(backend, run, result, panel)
        if best is not None:
            out.append(best)
    return out


def scanned_best_row(backend: SQLBackend, run: RunRecord, result: ResultRecord,
                     panel: RunPanel) -> PipelineRow | None:
    """A goal's best row read from its attempts, as little as possible: a goal a judge called
    broken is decided among the attempts some judge said yes to (every successful attempt is
    one of them, so the pick is the same); another goal is read whole."""
    from tracking.store_aggregates import attempts_judged_yes
    from tracking.success import RowOutcome, classify_row

    yes = _page_rows(backend, attempts_judged_yes(backend, run.id, result.id),
                     {result.id: result}, panel.judge_keys, panel.rule)
    if any(classify_row(r, panel.threshold) is RowOutcome.SUCCESSFUL for r in yes):
        return best_row(yes, panel.threshold)
    (_, rows), = goal_groups(backend, run.id, [result], panel.judge_keys, panel.rule)
    return best_row(rows, panel.threshold)
