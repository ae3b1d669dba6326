"""Idempotency tables of the pipeline: attempts (completions) and judgments.

Why: a retried Prefect task or ``siegeflow resume RUN_ID`` must not pay twice for a target
completion or a judge call. The pipeline first registers the prompts it means to send
(``upsert_attempts``, keyed by ``(run_id, result_id, prompt_hash)``), reads which are still
pending a page at a time (``iter_attempts`` with an ``AttemptFilter``: memory flat in a run's
size), and records each completion and verdict as it arrives. Inserts are "insert or
ignore": the row already stored always wins, so two racing retries cannot overwrite each
other. One exception is deliberate: a completion that ended in
an error may be replaced by a later completion (``replace_error=True``), which is what
retrying a transient failure means.

Mixed into ``SQLBackend``; relies on its ``engine`` and ``_insert_ignore``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tracking.models import AttemptRecord, JudgmentRecord, ResultRecord, table_of, utcnow
from tracking.redaction import redact, redact_text
from tracking.rows import NewAttempt
from tracking.success import ATTACKER_FAILURE

_IN_CHUNK = 500
#: Rows per page of a streamed read (`iter_attempts`): what a step holds of the store at once.
PAGE_SIZE = 500


@dataclass(frozen=True, kw_only=True)
class GoalShard:
    """One shard of a run's goals: those whose index is `index` modulo `count`. Said in SQL (a
    condition on the goal's index), never as a list of ids: a shard of 100,000 goals would be
    a statement with more bound parameters than SQLite (32,766) or PostgreSQL (65,535) take."""

    index: int
    count: int

    def owns(self, goal_index: int) -> bool:
        return goal_index % self.count == self.index

    def result_ids(self, run_id: str) -> sa.Select[Any]:
        """The shard's goals of a run, as a subquery."""
        results = table_of(ResultRecord)
        return sa.select(results.c.id).where(results.c.run_id == run_id,
                                             results.c.goal_index % self.count == self.index)


@dataclass(frozen=True, kw_only=True)
class AttemptFilter:
    """Which of a run's attempts a streamed read (`iter_attempts`, `count_attempts`) returns.

    ``pending``: no completion yet. ``answered``: a completion without an error and with a
    response (what judges read). ``result_ids``: only these goals; ``shard``: only that
    shard's goals (`GoalShard`, a condition in SQL);
    ``exclude_result_ids``: not these (the benign control set, judged apart). ``technique``:
    only attempts of that technique.
    """

    pending: bool = False
    answered: bool = False
    result_ids: Collection[str] | None = None
    shard: GoalShard | None = None
    exclude_result_ids: Collection[str] = ()
    technique: str | None = None

    def where(self, table: sa.Table, run_id: str) -> list[sa.ColumnElement[bool]]:
        clauses: list[sa.ColumnElement[bool]] = [table.c.run_id == run_id]
        if self.pending:
            clauses.append(table.c.completed_at.is_(None))
        if self.answered:
            clauses += [table.c.completed_at.is_not(None), table.c.error.is_(None),
                        table.c.response.is_not(None)]
        if self.result_ids is not None:
            clauses.append(table.c.result_id.in_(sorted(self.result_ids)))
        if self.shard is not None:
            clauses.append(table.c.result_id.in_(self.shard.result_ids(run_id)))
        if self.exclude_result_ids:
            clauses.append(table.c.result_id.not_in(sorted(self.exclude_result_ids)))
        if self.technique is not None:
            clauses.append(table.c.technique == self.technique)
        return clauses


class PipelineStoreMixin:
    """Attempts and judgments (see module docstring)."""

    engine: Engine

    def _insert_ignore(self, model: type, conflict_columns: list[str]) -> Any:
        raise NotImplementedError

    # -- attempts ------------------------------------------------------------------------

    def upsert_attempts(
        self, run_id: str, rows: Sequence[NewAttempt | Mapping[str, Any]]
    ) -> list[int]:
        """Register attempts (existing ones untouched); return their ids in input order.

        ``rows`` are ``NewAttempt`` or pipeline row dicts with ``result_id`` and
        ``prompt_hash`` (plus optional ``technique``, ``variant``, ``prompt``, ``metadata``).
        """
        items = [NewAttempt.from_any(row) for row in rows]
        if not items:
            return []
        now = utcnow()
        values = [
            {
                "run_id": run_id,
                "result_id": item.result_id,
                "prompt_hash": item.prompt_hash,
                "technique": item.technique,
                "variant": item.variant,
                "prompt": redact(item.prompt) if item.prompt is not None else None,
                "meta": redact(dict(item.metadata)) if item.metadata is not None else None,
                "created_at": now,
            }
            for item in items
        ]
        table = table_of(AttemptRecord)
        ids: dict[tuple[str, str], int] = {}
        # Read back by hash, not by goal: a goal may hold thousands of attempts (Best-of-N), and
        # re-reading them all on every batch would make a run quadratic in its size.
        # Both columns filtered, so the (run_id, result_id, prompt_hash) key index answers it.
        keys = sorted({(item.result_id, item.prompt_hash) for item in items})
        with self.engine.begin() as conn:
            conn.execute(
                self._insert_ignore(AttemptRecord, ["run_id", "result_id", "prompt_hash"]), values
            )
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                query = sa.select(table.c.id, table.c.result_id, table.c.prompt_hash).where(
                    table.c.run_id == run_id,
                    table.c.result_id.in_(sorted({r for r, _ in chunk})),
                    table.c.prompt_hash.in_([h for _, h in chunk]),
                )
                ids.update({(r.result_id, r.prompt_hash): r.id for r in conn.execute(query)})
        return [ids[(item.result_id, item.prompt_hash)] for item in items]

    def record_completion(
        self,
        attempt_id: int,
        *,
        response: str | None = None,
        error: str | None = None,
        error_kind: str | None = None,
        cost_usd: float | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        latency_s: float | None = None,
        attempts: int | None = None,
        replace_error: bool = True,
    ) -> bool:
        """Store the target's answer for an attempt; True if stored.

        A completion already recorded wins (False), except that an error completion is
        replaced when ``replace_error`` is true.
        """
        table = table_of(AttemptRecord)
        pending: sa.ColumnElement[bool] = table.c.completed_at.is_(None)
        if replace_error:
            pending = sa.or_(pending, table.c.error.is_not(None))
        stmt = (
            sa.update(table)
            .where(table.c.id == attempt_id, pending)
            .values(
                response=redact_text(response) if response is not None else None,
                error=redact_text(error) if error is not None else None,
                error_kind=error_kind,
                cost_usd=cost_usd,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_s=latency_s,
                attempts=attempts,
                completed_at=utcnow(),
            )
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def record_completion_from(self, attempt_id: int, completion: Any) -> bool:
        """``record_completion`` from a ``targets.Completion``-like object (duck-typed)."""
        return self.record_completion(
            attempt_id,
            response=getattr(completion, "text", None),
            error=getattr(completion, "error", None),
            error_kind=getattr(completion, "error_kind", None),
            cost_usd=getattr(completion, "cost_usd", None),
            prompt_tokens=getattr(completion, "prompt_tokens", None),
            completion_tokens=getattr(completion, "completion_tokens", None),
            latency_s=getattr(completion, "latency_s", None),
            attempts=getattr(completion, "attempts", None),
        )

    def record_decoded(self, items: Sequence[tuple[int, str]]) -> int:
        """Store the decoded answers of attempts (what the judges read), in one transaction.

        Only answers a technique changed are worth a row: NULL reads as "same as the raw
        answer". A decode is deterministic per answer, so a later write of the same attempt
        stores the same text. Returns how many rows were updated."""
        if not items:
            return 0
        table = table_of(AttemptRecord)
        stmt = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("b_id"))
            .values(decoded_response=sa.bindparam("b_decoded"))
        )
        params = [{"b_id": attempt_id, "b_decoded": redact_text(text)}
                  for attempt_id, text in items]
        with self.engine.begin() as conn:
            return int(conn.execute(stmt, params).rowcount or 0)

    def list_attempts(
        self,
        run_id: str,
        result_id: str | None = None,
        pending_only: bool = False,
        *,
        include_errors: bool = False,
    ) -> list[AttemptRecord]:
        """A run's attempts by id. ``pending_only``: no completion yet (and, with
        ``include_errors``, also those whose completion was an error)."""
        table = table_of(AttemptRecord)
        query = sa.select(table).where(table.c.run_id == run_id)
        if result_id is not None:
            query = query.where(table.c.result_id == result_id)
        if pending_only:
            pending: sa.ColumnElement[bool] = table.c.completed_at.is_(None)
            if include_errors:
                pending = sa.or_(pending, sa.and_(
                    table.c.error.is_not(None),
                    sa.or_(table.c.error_kind.is_(None),
                           table.c.error_kind != ATTACKER_FAILURE)))
            query = query.where(pending)
        return self._read(AttemptRecord, query.order_by(table.c.id))

    def iter_attempts(
        self, run_id: str, where: AttemptFilter = AttemptFilter(), *,
        page_size: int | None = None, columns: Sequence[str] | None = None,
    ) -> Iterator[list[AttemptRecord]]:
        """A run's attempts matching `where`, by id, one page (a list) at a time.

        Keyset-paged (``id > last ORDER BY id LIMIT page_size``), one short read transaction per
        page: memory is one page, and rows that change between pages (completed by the step
        reading them) are neither skipped nor read twice, as they would be with OFFSET.
        ``columns``: read only these (plus ``id``), e.g. not the prompts. Records are detached,
        as `list_attempts` gives them. ``page_size``: `PAGE_SIZE` by default."""
        size = PAGE_SIZE if page_size is None else page_size
        table = table_of(AttemptRecord)
        selected: list[Any] = ([table] if columns is None
                               else [table.c.id, *(table.c[c] for c in columns if c != "id")])
        clauses = where.where(table, run_id)
        last: int | None = None
        while True:
            query = sa.select(*selected).where(*clauses)
            if last is not None:
                query = query.where(table.c.id > last)
            page = self._read(AttemptRecord, query.order_by(table.c.id).limit(size))
            if not page:
                return
            yield page
            if len(page) < size:
                return
            last = page[-1].id

    def count_attempts(self, run_id: str, where: AttemptFilter = AttemptFilter()) -> int:
        """How many of a run's attempts match `where` (a step's progress total), in SQL."""
        table = table_of(AttemptRecord)
        query = sa.select(sa.func.count()).select_from(table).where(*where.where(table, run_id))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def attempted_result_ids(self, run_id: str) -> set[str]:
        """The goals (result ids) of a run that have at least one attempt: one per goal."""
        table = table_of(AttemptRecord)
        query = sa.select(table.c.result_id).where(table.c.run_id == run_id).distinct()
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def judged_pairs(self, attempt_ids: Collection[int], judges: Collection[str] | None = None
                     ) -> set[tuple[int, str]]:
        """The (attempt id, judge) verdicts recorded for these attempts (of `judges`, if given):
        what a streamed Evaluation asks per page instead of reading a run's every judgment."""
        table = table_of(JudgmentRecord)
        ids = sorted(attempt_ids)
        out: set[tuple[int, str]] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                query = sa.select(table.c.attempt_id, table.c.judge).where(
                    table.c.attempt_id.in_(ids[start : start + _IN_CHUNK]))
                if judges is not None:
                    query = query.where(table.c.judge.in_(sorted(judges)))
                out.update((row.attempt_id, row.judge) for row in conn.execute(query))
        return out

    def judgments_of(self, attempt_ids: Collection[int], judges: Collection[str]
                     ) -> list[JudgmentRecord]:
        """The verdicts of `judges` on these attempts (a page of them), detached."""
        table = table_of(JudgmentRecord)
        ids = sorted(attempt_ids)
        out: list[JudgmentRecord] = []
        for start in range(0, len(ids), _IN_CHUNK):
            query = sa.select(table).where(table.c.attempt_id.in_(ids[start : start + _IN_CHUNK]),
                                           table.c.judge.in_(sorted(judges)))
            out += self._read(JudgmentRecord, query)
        return out

    def count_judged(self, run_id: str, where: AttemptFilter, judges: Collection[str]) -> int:
        """How many verdicts of `judges` are recorded on the attempts matching `where`."""
        attempts, judgments = table_of(AttemptRecord), table_of(JudgmentRecord)
        query = (sa.select(sa.func.count()).select_from(
            judgments.join(attempts, attempts.c.id == judgments.c.attempt_id))
            .where(*where.where(attempts, run_id), judgments.c.judge.in_(sorted(judges))))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def _read(self, model: Any, query: sa.Select[Any]) -> list[Any]:
        """Records of `model` read for reading: plain rows made into detached records, without
        the ORM's identity map and per-object bookkeeping (the pipeline reads thousands of
        attempts per step; the ORM path costs several times as much). Never add them back to a
        session: use the store's write methods."""
        with self.engine.connect() as conn:
            return [model.model_construct(**row._mapping) for row in conn.execute(query)]

    def reopen_errored_attempts(self, run_id: str) -> int:
        """Make every attempt whose completion was a target error pending again; return how many.

        What `siegeflow resume --retry-errors` does after an outage: the completions step then
        requests them again (under the run's budget and rate limits) and a new answer replaces
        the error. The error text stays until then, so an attempt the resume does not reach
        (budget) still reads as the error it was.
        """
        table = table_of(AttemptRecord)
        stmt = (
            sa.update(table)
            .where(table.c.run_id == run_id, table.c.error.is_not(None),
                   table.c.completed_at.is_not(None),
                   # an attacker failure was never sent: resending would send nothing
                   sa.or_(table.c.error_kind.is_(None),
                          table.c.error_kind != ATTACKER_FAILURE))
            .values(completed_at=None)
        )
        with self.engine.begin() as conn:
            return int(conn.execute(stmt).rowcount or 0)

    # -- judgments -----------------------------------------------------------------------

    def record_judgment(
        self,
        attempt_id: int,
        judge: str,
        *,
        success: bool | None = None,
        score: float | None = None,
        raw: str | None = None,
        error: str | None = None,
        cost_usd: float | None = None,
        attacker_cost_usd: float | None = None,
    ) -> JudgmentRecord:
        """Store one judge's verdict on an attempt; an existing verdict wins and is returned."""
        attempts = table_of(AttemptRecord)
        run_id = sa.select(attempts.c.run_id).where(attempts.c.id == attempt_id).scalar_subquery()
        values = {
            "attempt_id": attempt_id,
            "run_id": run_id,
            "judge": judge,
            "success": success,
            "score": score,
            "raw": redact_text(raw) if raw is not None else None,
            "error": redact_text(error) if error is not None else None,
            "cost_usd": cost_usd,
            "attacker_cost_usd": attacker_cost_usd,
            "created_at": utcnow(),
        }
        stmt = self._insert_ignore(JudgmentRecord, ["attempt_id", "judge"]).values(**values)
        query = select(JudgmentRecord).where(
            JudgmentRecord.attempt_id == attempt_id, JudgmentRecord.judge == judge
        )
        with Session(self.engine, expire_on_commit=False) as session:
            session.execute(stmt)
            record = session.exec(query).one()
            session.commit()
            return record

    def record_verdict(self, attempt_id: int, verdict: Any) -> JudgmentRecord:
        """``record_judgment`` from a ``judges.Verdict``-like object (duck-typed)."""
        return self.record_judgment(
            attempt_id,
            str(verdict.judge),
            success=getattr(verdict, "success", None),
            score=getattr(verdict, "score", None),
            raw=getattr(verdict, "raw", None),
            error=getattr(verdict, "error", None),
            cost_usd=getattr(verdict, "cost_usd", None),
            attacker_cost_usd=getattr(verdict, "attacker_cost_usd", None) or None,
        )

    def list_judgments(
        self, *, run_id: str | None = None, attempt_id: int | None = None
    ) -> list[JudgmentRecord]:
        """Judgments of a run or of one attempt, by attempt then judge."""
        if run_id is None and attempt_id is None:
            raise ValueError("list_judgments needs run_id and/or attempt_id")
        table = table_of(JudgmentRecord)
        query = sa.select(table)
        if run_id is not None:
            query = query.where(table.c.run_id == run_id)
        if attempt_id is not None:
            query = query.where(table.c.attempt_id == attempt_id)
        return self._read(JudgmentRecord, query.order_by(table.c.attempt_id, table.c.judge))

    # -- bulk writes (the pipeline's hot path) --------------------------------------------

    def record_completions(self, items: Sequence[tuple[int, Any]]) -> int:
        """``record_completion_from`` for many ``(attempt_id, completion)`` in one transaction.

        Same rule as the single-row method: a stored completion wins unless it was an error.
        Returns how many rows were stored. One transaction per batch instead of per row is what
        keeps the store off the critical path at high concurrency.
        """
        if not items:
            return 0
        table = table_of(AttemptRecord)
        pending = sa.or_(table.c.completed_at.is_(None), table.c.error.is_not(None))
        stmt = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("b_id"), pending)
            .values(
                response=sa.bindparam("b_response"), error=sa.bindparam("b_error"),
                error_kind=sa.bindparam("b_kind"), cost_usd=sa.bindparam("b_cost"),
                prompt_tokens=sa.bindparam("b_pt"), completion_tokens=sa.bindparam("b_ct"),
                latency_s=sa.bindparam("b_latency"), attempts=sa.bindparam("b_attempts"),
                completed_at=sa.bindparam("b_now", type_=table.c.completed_at.type),
            )
        )
        now = utcnow()
        params = []
        for attempt_id, c in items:
            text, error = getattr(c, "text", None), getattr(c, "error", None)
            params.append({
                "b_id": attempt_id,
                "b_response": redact_text(text) if text is not None else None,
                "b_error": redact_text(error) if error is not None else None,
                "b_kind": getattr(c, "error_kind", None),
                "b_cost": getattr(c, "cost_usd", None),
                "b_pt": getattr(c, "prompt_tokens", None),
                "b_ct": getattr(c, "completion_tokens", None),
                "b_latency": getattr(c, "latency_s", None),
                "b_attempts": getattr(c, "attempts", None),
                "b_now": now,
            })
        calls = {attempt_id: _tool_calls(c) for attempt_id, c in items if getattr(c, "tool_calls", ())}
        with self.engine.begin() as conn:
            stored = int(conn.execute(stmt, params).rowcount or 0)
            if calls:  # rare (app and agent targets): the calls join the attempt's meta
                rows = conn.execute(sa.select(table.c.id, table.c.meta)
                                    .where(table.c.id.in_(list(calls)))).all()
                conn.execute(sa.update(table).where(table.c.id == sa.bindparam("b_id"))
                             .values(meta=sa.bindparam("b_meta")),
                             [{"b_id": i, "b_meta": {**(meta or {}), "tool_calls": calls[i]}}
                              for i, meta in rows])
            return stored

    def record_verdicts(self, items: Sequence[tuple[int, Any]]) -> None:
        """``record_verdict`` for many ``(attempt_id, verdict)`` in one transaction (existing
        verdicts win)."""
        if not items:
            return
        attempts = table_of(AttemptRecord)
        ids = sorted({attempt_id for attempt_id, _ in items})
        now = utcnow()
        # The lookup is its own (read) transaction: on SQLite a transaction that reads and then
        # writes fails at once if another connection commits in between (SQLITE_BUSY_SNAPSHOT,
        # which the busy timeout does not cover). An attempt's run never changes.
        run_of: dict[int, str] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                query = sa.select(attempts.c.id, attempts.c.run_id).where(
                    attempts.c.id.in_(ids[start : start + _IN_CHUNK])
                )
                run_of.update({row.id: row.run_id for row in conn.execute(query)})
        with self.engine.begin() as conn:
            values = [
                {
                    "attempt_id": attempt_id,
                    "run_id": run_of[attempt_id],
                    "judge": str(v.judge),
                    "success": getattr(v, "success", None),
                    "score": getattr(v, "score", None),
                    "raw": redact_text(v.raw) if getattr(v, "raw", None) is not None else None,
                    "error": redact_text(v.error) if getattr(v, "error", None) is not None else None,
                    "cost_usd": getattr(v, "cost_usd", None),
                    "attacker_cost_usd": getattr(v, "attacker_cost_usd", None) or None,
                    "created_at": now,
                }
                for attempt_id, v in items
            ]
            conn.execute(self._insert_ignore(JudgmentRecord, ["attempt_id", "judge"]), values)


#: Characters of a tool's output (or error) kept on an attempt (the whole text is the agent's).
TOOL_OUTPUT_CHARS = 4000


def _tool_calls(completion: Any) -> list[dict[str, Any]]:
    """The tool calls a target made (an agent, an app reporting them), redacted, for `meta`:
    each `{name, arguments}`, with the tool's `output` (what the agent read) and `error` when
    the target ran the tool and reported them."""
    calls = []
    for c in completion.tool_calls:
        call: dict[str, Any] = {"name": c.name, "arguments": c.arguments}
        for key in ("output", "error"):
            value = getattr(c, key, None)
            if value is not None:
                call[key] = value[:TOOL_OUTPUT_CHARS]
        calls.append(redact(call))
    return calls
