"""Reading a big run without holding it: attempts in keyset pages, figures by SQL.

Why (issue 23): a Best-of-N run of 100 goals x 10,000 samples has a million attempts; reading
them all at once (``list_attempts``) costs gigabytes. Everything the end of a run and the
reports need is read here either one page of attempts at a time (keyset on ``attempts.id``:
``id > last`` with a ``LIMIT``, never ``OFFSET``), one goal at a time, or as an aggregate the
database computes (``GROUP BY``, the same SQL on SQLite and PostgreSQL).

Reads only; every function takes the store (``SQLBackend``) and returns plain records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tracking.models import AttemptRecord, JudgmentRecord, ResultRecord, table_of

if TYPE_CHECKING:
    from tracking.store import SQLBackend

#: Attempts read per query: big enough that a million attempts is 1,000 queries, small enough
#: that a page of long conversations stays a few megabytes.
PAGE = 1000
_IN_CHUNK = 500


def attempt_pages(backend: SQLBackend, run_id: str, result_id: str | None = None,
                  page: int = PAGE) -> Iterator[list[AttemptRecord]]:
    """A run's (or one goal's) attempts in id order, `page` at a time (keyset on the id)."""
    table = table_of(AttemptRecord)
    for found in _keyset_pages(backend, sa.select(table), run_id, result_id, page):
        yield [AttemptRecord.model_construct(**r._mapping) for r in found]


#: The columns of an attempt that its pipeline row is made of, in the order `row_pages` gives
#: them, then `pending` (`completed_at IS NULL`).
ROW_COLUMNS = ("id", "result_id", "technique", "variant", "meta", "prompt", "prompt_hash",
               "response", "decoded_response", "error", "error_kind", "cost_usd")


def row_pages(backend: SQLBackend, run_id: str, result_id: str | None = None,
              page: int = PAGE) -> Iterator[list[sa.Row[Any]]]:
    """`attempt_pages` as plain tuples of `ROW_COLUMNS` and `pending`: what a pipeline row
    needs and nothing else. The end of a big run builds one row per attempt; a model per
    attempt (`model_construct`, its attribute descriptors) and timestamps it never reads were
    most of that time (issue 23)."""
    table = table_of(AttemptRecord)
    query = sa.select(*(table.c[name] for name in ROW_COLUMNS),
                      table.c.completed_at.is_(None).label("pending"))
    yield from _keyset_pages(backend, query, run_id, result_id, page)


def attempts_per_result(backend: SQLBackend, run_id: str,
                        result_ids: Sequence[str] | None = None) -> dict[str, int]:
    """Per result id: how many attempts the run has for it (one GROUP BY), so many small goals
    can be read in one query (`rows_of_results`). `result_ids`: only these (at most
    `_IN_CHUNK`; one goal of a million-attempt run is counted on its index, not the run)."""
    table = table_of(AttemptRecord)
    query = (sa.select(table.c.result_id, sa.func.count()).where(table.c.run_id == run_id)
             .group_by(table.c.result_id))
    if result_ids is not None:
        if len(result_ids) > _IN_CHUNK:
            raise ValueError(f"at most {_IN_CHUNK} goals per query, not {len(result_ids)}")
        query = query.where(table.c.result_id.in_(list(result_ids)))
    with backend.engine.connect() as conn:
        return {str(result_id): int(n) for result_id, n in conn.execute(query)}


#: What finalization changes on a result that a report reads (`flows.run_record.
#: refresh_results`); not `metrics`: no report reads them, and 50,000 goals' are ~100 MB.
OUTCOME_COLUMNS = ("evaluation_status", "evaluation_notes", "evaluated_at", "updated_at")


def result_outcomes(backend: SQLBackend, run_id: str) -> dict[str, dict[str, Any]]:
    """Per result id: its `OUTCOME_COLUMNS` as stored now, typed as a `ResultRecord` has them."""
    table = table_of(ResultRecord)
    query = sa.select(table.c.id, *(table.c[name] for name in OUTCOME_COLUMNS)).where(
        table.c.run_id == run_id)
    with backend.engine.connect() as conn:
        return {str(row.id): {name: getattr(row, name) for name in OUTCOME_COLUMNS}
                for row in conn.execute(query)}


def rows_of_results(backend: SQLBackend, run_id: str,
                    result_ids: Sequence[str]) -> list[sa.Row[Any]]:
    """`row_pages`' tuples of these goals' attempts (at most `_IN_CHUNK` ids), in id order:
    a run of many small goals is read a batch of goals per query, not two queries a goal
    (50,000 goals of 4 attempts: 100,000 round trips, issue 23)."""
    if len(result_ids) > _IN_CHUNK:
        raise ValueError(f"at most {_IN_CHUNK} goals per query, not {len(result_ids)}")
    table = table_of(AttemptRecord)
    query = (sa.select(*(table.c[name] for name in ROW_COLUMNS),
                       table.c.completed_at.is_(None).label("pending"))
             .where(table.c.run_id == run_id, table.c.result_id.in_(list(result_ids)))
             .order_by(table.c.id))
    with backend.engine.connect() as conn:
        return list(conn.execute(query).all())


def _keyset_pages(backend: SQLBackend, query: sa.Select[Any], run_id: str,
                  result_id: str | None, page: int) -> Iterator[list[sa.Row[Any]]]:
    """The rows of `query` (over attempts, with their `id`) for a run or a goal, in id order,
    `page` at a time: `id > last` with a `LIMIT`, one row more to know whether another page
    follows (no query for an empty last page)."""
    table = table_of(AttemptRecord)
    last = 0
    while True:
        mine = query.where(table.c.run_id == run_id, table.c.id > last)
        if result_id is not None:
            mine = mine.where(table.c.result_id == result_id)
        with backend.engine.connect() as conn:
            found = list(conn.execute(mine.order_by(table.c.id).limit(page + 1)).all())
        if found[:page]:
            yield found[:page]
        if len(found) <= page:
            return
        last = int(found[page - 1].id)


def attempts_judged_yes(backend: SQLBackend, run_id: str, result_id: str) -> list[AttemptRecord]:
    """A goal's attempts that at least one judge called a success, by id: where its best
    attempt is when it was broken (a success needs a judge's yes), read without the others."""
    attempts, judgments = table_of(AttemptRecord), table_of(JudgmentRecord)
    yes = sa.select(judgments.c.attempt_id).where(
        judgments.c.attempt_id == attempts.c.id, judgments.c.success.is_(True))
    query = (sa.select(attempts).where(attempts.c.run_id == run_id,
                                       attempts.c.result_id == result_id, yes.exists())
             .order_by(attempts.c.id))
    with backend.engine.connect() as conn:
        return [AttemptRecord.model_construct(**r._mapping) for r in conn.execute(query)]


def attempts_by_id(backend: SQLBackend, attempt_ids: Sequence[int]) -> list[AttemptRecord]:
    """These attempts (those that exist), in id order: O(ids) rows, whatever the run's size."""
    table = table_of(AttemptRecord)
    ids = sorted(set(attempt_ids))
    out: list[AttemptRecord] = []
    with backend.engine.connect() as conn:
        for start in range(0, len(ids), _IN_CHUNK):
            query = (sa.select(table).where(table.c.id.in_(ids[start:start + _IN_CHUNK]))
                     .order_by(table.c.id))
            out += [AttemptRecord.model_construct(**r._mapping) for r in conn.execute(query)]
    return out


def judgments_of(backend: SQLBackend, attempt_ids: Sequence[int]) -> list[JudgmentRecord]:
    """The judgments of these attempts, by attempt then judge (as ``list_judgments``)."""
    table = table_of(JudgmentRecord)
    return [JudgmentRecord.model_construct(**r._mapping)
            for r in _judgments_by_id(backend, sa.select(table), attempt_ids)]


def _judgments_by_id(backend: SQLBackend, query: sa.Select[Any],
                     attempt_ids: Sequence[int]) -> list[sa.Row[Any]]:
    table = table_of(JudgmentRecord)
    ids = sorted(attempt_ids)
    out: list[sa.Row[Any]] = []
    with backend.engine.connect() as conn:
        for start in range(0, len(ids), _IN_CHUNK):
            mine = query.where(table.c.attempt_id.in_(ids[start:start + _IN_CHUNK]))
            out += conn.execute(mine.order_by(table.c.attempt_id, table.c.judge)).all()
    return out


def judgments_of_page(backend: SQLBackend, run_id: str,
                      attempts: Sequence[AttemptRecord]) -> list[JudgmentRecord]:
    """The judgments of a page of `attempt_pages`, by attempt then judge (`_page_judgments`)."""
    table = table_of(JudgmentRecord)
    return [JudgmentRecord.model_construct(**r._mapping) for r in _page_judgments(
        backend, sa.select(table), run_id, [int(a.id or 0) for a in attempts])]


#: The columns of a judgment that a pipeline row is made of, in the order `cells_of_page`
#: gives them.
CELL_COLUMNS = ("attempt_id", "judge", "success", "score", "error", "cost_usd")


def cells_of_page(backend: SQLBackend, run_id: str, ids: Sequence[int]) -> list[sa.Row[Any]]:
    """`judgments_of_page` of a `row_pages` page (its attempt ids) as plain tuples of
    `CELL_COLUMNS`: no model per judgment, no timestamp, no raw judge output."""
    table = table_of(JudgmentRecord)
    return _page_judgments(backend, sa.select(*(table.c[name] for name in CELL_COLUMNS)),
                           run_id, ids)


def _page_judgments(backend: SQLBackend, query: sa.Select[Any], run_id: str,
                    ids: Sequence[int]) -> list[sa.Row[Any]]:
    """The rows of `query` (over judgments) for these attempts, by attempt then judge.

    A page whose ids are contiguous (a run's page, or a goal whose attempts were written
    together) is one range query on judgments (run_id, attempt_id, judge): one round trip, no
    list of ids. A goal whose ids interleave with other goals' (Best-of-N and concurrent
    Generation write goals round-robin) is read by its ids: a range there spans the whole run,
    and PostgreSQL's plan for a range restricted by a subquery on the goal's attempts took
    minutes on a 20,000-attempt run."""
    if not ids:
        return []
    lo, hi = min(ids), max(ids)
    if hi - lo + 1 != len(set(ids)):
        return _judgments_by_id(backend, query, ids)
    table = table_of(JudgmentRecord)
    mine = query.where(table.c.run_id == run_id, table.c.attempt_id.between(lo, hi))
    with backend.engine.connect() as conn:
        return list(conn.execute(mine.order_by(table.c.attempt_id, table.c.judge)).all())


def _streamed(backend: SQLBackend, query: sa.Select[Any]) -> Iterator[Any]:
    """The rows of `query` as the database sends them (server-side cursor on PostgreSQL)."""
    with backend.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=PAGE).execute(query)
        yield from result


def attempt_costs(backend: SQLBackend, run_id: str) -> Iterator[Any]:
    """(cost_usd, meta) of a run's attempts in id order, streamed: what ``spend_of`` sums,
    in the order it always summed them (so the figures are the same to the last bit).

    ``meta`` is read only where its text names ``generation_cost_usd`` (else None): the one
    key ``spend_of`` reads, and adding the 0.0 it gives for the others changes no sum. Decoding
    every attempt's JSON was most of this pass at the end of a big run (issue 23)."""
    table = table_of(AttemptRecord)
    named = sa.cast(table.c.meta, sa.Text).contains("generation_cost_usd", autoescape=True)
    meta = sa.case((named, table.c.meta), else_=sa.null()).label("meta")
    return _streamed(backend, sa.select(table.c.cost_usd, meta)
                     .where(table.c.run_id == run_id).order_by(table.c.id))


def judgment_costs(backend: SQLBackend, run_id: str) -> Iterator[Any]:
    """(cost_usd, attacker_cost_usd) of a run's judgments, in ``list_judgments``' order."""
    table = table_of(JudgmentRecord)
    return _streamed(backend, sa.select(table.c.cost_usd, table.c.attacker_cost_usd)
                     .where(table.c.run_id == run_id)
                     .order_by(table.c.attempt_id, table.c.judge))


@dataclass(frozen=True, kw_only=True)
class AttemptCounts:
    """A run's attempts counted by the database: all, answered, target errors, pending."""

    attempts: int = 0
    answered: int = 0
    errors: int = 0
    pending: int = 0
    cost_usd: float = 0.0


def attempt_counts(backend: SQLBackend, run_ids: Sequence[str]) -> dict[str, AttemptCounts]:
    """Per run: its attempts counted in SQL (one GROUP BY query per 500 runs)."""
    table = table_of(AttemptRecord)
    done = table.c.completed_at.is_not(None)
    errored = table.c.error.is_not(None)
    out: dict[str, AttemptCounts] = {}
    ids = list(dict.fromkeys(run_ids))
    with backend.engine.connect() as conn:
        for start in range(0, len(ids), _IN_CHUNK):
            query = sa.select(
                table.c.run_id, sa.func.count(),
                sa.func.sum(sa.case((sa.and_(done, table.c.error.is_(None)), 1), else_=0)),
                sa.func.sum(sa.case((sa.and_(done, errored), 1), else_=0)),
                sa.func.sum(sa.case((done, 0), else_=1)),
                sa.func.coalesce(sa.func.sum(table.c.cost_usd), 0.0),
            ).where(table.c.run_id.in_(ids[start:start + _IN_CHUNK])).group_by(table.c.run_id)
            for run_id, n, answered, errors, pending, cost in conn.execute(query):
                out[run_id] = AttemptCounts(attempts=int(n), answered=int(answered or 0),
                                            errors=int(errors or 0), pending=int(pending or 0),
                                            cost_usd=float(cost or 0.0))
    return out


__all__ = ["CELL_COLUMNS", "OUTCOME_COLUMNS", "PAGE", "ROW_COLUMNS", "AttemptCounts", "attempt_costs",
           "attempt_counts", "attempt_pages", "attempts_per_result", "attempts_by_id", "attempts_judged_yes",
           "cells_of_page", "judgment_costs", "judgments_of", "judgments_of_page", "result_outcomes", "row_pages",
           "rows_of_results"]
