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

from tracking.models import AttemptRecord, JudgmentRecord, table_of

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
    last = 0
    while True:
        query = sa.select(table).where(table.c.run_id == run_id, table.c.id > last)
        if result_id is not None:
            query = query.where(table.c.result_id == result_id)
        with backend.engine.connect() as conn:  # one row more: is there another page?
            found = conn.execute(query.order_by(table.c.id).limit(page + 1)).all()
        rows = [AttemptRecord.model_construct(**r._mapping) for r in found[:page]]
        if rows:
            yield rows
        if len(found) <= page:  # no query for an empty last page
            return
        last = int(rows[-1].id or 0)


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
    ids = sorted(attempt_ids)
    out: list[JudgmentRecord] = []
    with backend.engine.connect() as conn:
        for start in range(0, len(ids), _IN_CHUNK):
            query = (sa.select(table).where(table.c.attempt_id.in_(ids[start:start + _IN_CHUNK]))
                     .order_by(table.c.attempt_id, table.c.judge))
            out += [JudgmentRecord.model_construct(**r._mapping)
                    for r in conn.execute(query).all()]
    return out


def judgments_of_page(backend: SQLBackend, run_id: str,
                      attempts: Sequence[AttemptRecord]) -> list[JudgmentRecord]:
    """The judgments of a page of `attempt_pages`, by attempt then judge.

    A page whose ids are contiguous (a run's page, or a goal whose attempts were written
    together) is one range query on judgments (run_id, attempt_id, judge): one round trip, no
    list of ids. A goal whose ids interleave with other goals' (Best-of-N and concurrent
    Generation write goals round-robin) is read by its ids (`judgments_of`): a range there
    spans the whole run, and PostgreSQL's plan for a range restricted by a subquery on the
    goal's attempts took minutes on a 20,000-attempt run."""
    if not attempts:
        return []
    ids = [int(a.id or 0) for a in attempts]
    lo, hi = min(ids), max(ids)
    if hi - lo + 1 != len(set(ids)):
        return judgments_of(backend, ids)
    table = table_of(JudgmentRecord)
    query = sa.select(table).where(table.c.run_id == run_id, table.c.attempt_id.between(lo, hi))
    with backend.engine.connect() as conn:
        return [JudgmentRecord.model_construct(**r._mapping) for r in conn.execute(
            query.order_by(table.c.attempt_id, table.c.judge)).all()]


def _streamed(backend: SQLBackend, query: sa.Select[Any]) -> Iterator[Any]:
    """The rows of `query` as the database sends them (server-side cursor on PostgreSQL)."""
    with backend.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=PAGE).execute(query)
        yield from result


def attempt_costs(backend: SQLBackend, run_id: str) -> Iterator[Any]:
    """(cost_usd, meta) of a run's attempts in id order, streamed: what ``spend_of`` sums,
    in the order it always summed them (so the figures are the same to the last bit)."""
    table = table_of(AttemptRecord)
    return _streamed(backend, sa.select(table.c.cost_usd, table.c.meta)
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


__all__ = ["PAGE", "AttemptCounts", "attempt_costs", "attempt_counts", "attempt_pages",
           "attempts_by_id", "attempts_judged_yes", "judgment_costs", "judgments_of",
           "judgments_of_page"]
