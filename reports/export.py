"""`siegeflow export RUN_ID --format jsonl|csv`: every attempt of a run, whole, for analysis.

One record per attempt (goal, the goal's stored status, technique, variant, the full prompt
and answer, each judge's verdict, the combined verdict, cost, and the tool calls an app or agent
target made). `prompt` is the whole
conversation as it was stored (OpenAI-form messages: a Crescendo run's every turn, not its
last), `prompt_text` its last user message, and `decoded_response` what the judges read (the
raw answer when the technique did not decode it). Texts are written as recorded
(JSON and the csv module quote them); the CSV is for spreadsheets, so a cell that a spreadsheet
would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) is prefixed with `'`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from reports.load import GoalView, RunData, RunNotFound, build_goals
from tracking import is_benign
from tracking.rows import PipelineRow
from tracking.store import SQLBackend

FORMATS = ("jsonl", "csv")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def records(data: RunData) -> list[dict[str, Any]]:
    return [_record(data.run_id, goal, row) for goal in data.goals for row in goal.rows]


def _record(run_id: str, goal: GoalView, row: PipelineRow) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "goal_index": goal.index,
        "goal_id": goal.goal_id,
        "category": goal.category,
        "goal": goal.goal,
        "goal_status": goal.status.value,
        "attempt_id": row.attempt_id,
        "technique": row.technique,
        "variant": row.variant,
        "prompt": [dict(m) for m in row.conversation] or (
            [{"role": "user", "content": row.prompt}] if row.prompt else []),
        "prompt_text": row.prompt,
        "response": row.response,
        "decoded_response": row.decoded if row.decoded is not None else row.response,
        "error": row.error,
        "error_kind": row.error_kind,
        "success": row.success,
        "score": row.score,
        "judges": {name: cell.as_dict() for name, cell in row.judges.items()},
        "cost_usd": row.cost_usd,
        "tool_calls": row.meta.get("tool_calls", []),  # an app or agent target's
    }


def iter_records(backend: SQLBackend, run_id: str) -> Iterator[dict[str, Any]]:
    """Every attempt's record, goal by goal (attacked goals, by index), read from the store a
    page at a time: a run of a million attempts is never in memory (`RunNotFound` if none)."""
    from reports.rows import RunPanel, goal_groups

    run = backend.get_run(run_id)
    if run is None:
        raise RunNotFound(f"no run {run_id!r} in the store")
    panel = RunPanel.of(run)
    attacked = [r for r in backend.list_results(run_id) if not is_benign(r.goal_metadata)]
    for result, rows in goal_groups(backend, run_id, attacked, panel.judge_keys, panel.rule):
        (goal,) = build_goals([result], [], panel.threshold)
        for row in rows:
            yield _record(run_id, goal, row)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_records(rows: Iterable[dict[str, Any]], format: str, stream: IO[str]) -> None:
    """Write records one at a time (`rows` may be a generator: nothing is collected)."""
    if format == "jsonl":
        for record in rows:
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif format == "csv":
        writer: csv.DictWriter[str] | None = None
        for record in rows:
            if writer is None:
                writer = csv.DictWriter(stream, fieldnames=list(record))
                writer.writeheader()
            writer.writerow({k: _csv_cell(v) for k, v in record.items()})
    else:
        raise ValueError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")


def export_run(backend: SQLBackend, run_id: str, format: str, stream: IO[str]) -> None:
    """Write the run's attempts to `stream` (`RunNotFound` if the run does not exist)."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    write_records(iter_records(backend, run_id), format, stream)
