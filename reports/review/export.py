"""`siegeflow review export RUN -o labels.jsonl`: the run's reviewed items in the generic labels
format `judges validate --labels` and `judges train --labels` read (`judges/labels.py`).

One line per item with a yes/no label (the reviewers' majority, or one reviewer's with
`reviewer`); skipped and tied items are left out. `response` is the answer as the run's judges
read it (decoded, when the run decoded it), so a judge validated on the file sees what it saw
in the run; `group` is the goal's id, so cross-validation keeps a goal's items together.
"""

from __future__ import annotations

import json
from pathlib import Path

from reports.load import load_run
from reports.review.items import combined_labels, load_items
from tracking.store import SQLBackend


def export_labels(backend: SQLBackend, run_id: str, out: Path,
                  reviewer: str | None = None) -> int:
    """Write the labels file; how many items it holds."""
    data = load_run(backend, run_id, with_traces=False)
    labels = [label for label in backend.list_review_labels(run_id)
              if reviewer is None or label.reviewer == reviewer]
    combined = combined_labels(labels)
    goal_ids = {g.result_id: g.goal_id for g in data.goals}
    lines = []
    for item in load_items(backend, data):
        if item.attempt_id not in combined:
            continue
        response = item.decoded if item.decoded is not None else item.response
        if not item.goal or not response:  # the labels format requires both
            continue
        technique, _, variant = item.technique.partition("/")
        lines.append(json.dumps({
            "id": f"{run_id}:{item.attempt_id}", "goal": item.goal,
            "response": response,
            "label": 1 if combined[item.attempt_id] else 0, "prompt": item.prompt,
            "context": item.context, "technique": technique, "variant": variant,
            "group": goal_ids.get(item.result_id, item.result_id), "split": "review",
        }, ensure_ascii=False))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)
