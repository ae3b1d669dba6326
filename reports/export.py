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
from typing import IO, Any

from reports.load import RunData, load_run
from tracking.store import SQLBackend

FORMATS = ("jsonl", "csv")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def records(data: RunData) -> list[dict[str, Any]]:
    out = []
    for goal in data.goals:
        for row in goal.rows:
            out.append({
                "run_id": data.run_id,
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
            })
    return out


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_records(rows: list[dict[str, Any]], format: str, stream: IO[str]) -> None:
    if format == "jsonl":
        for record in rows:
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif format == "csv":
        if not rows:
            return
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        for record in rows:
            writer.writerow({k: _csv_cell(v) for k, v in record.items()})
    else:
        raise ValueError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")


def export_run(backend: SQLBackend, run_id: str, format: str, stream: IO[str]) -> None:
    """Write the run's attempts to `stream` (`RunNotFound` if the run does not exist)."""
    write_records(records(load_run(backend, run_id, with_traces=False)), format, stream)
