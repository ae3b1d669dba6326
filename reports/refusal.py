"""The false-refusal rate of a run's benign control set, next to the ASR.

A guardrail change shows up on both sides: fewer jailbreaks (ASR) and, often, more refused
harmless requests. The rate is refused / (answered + refused) over the benign prompts, with its
Wilson 95% interval; prompts whose target call failed or that could not be judged are excluded
and counted. The refusal judge's phrase list decides (`tasks.benign`).
"""

from __future__ import annotations

from typing import Any

from reports.figures import ci_text, pct, wilson


def refusal_line(block: dict[str, Any] | None) -> str | None:
    """One plain-text line from the summary's `over_refusal` block (None: no benign set)."""
    if not block:
        return None
    refused, answered = int(block.get("refused") or 0), int(block.get("answered") or 0)
    n = refused + answered
    rate = refusal_rate(block)
    ci = ci_text(wilson(refused, n)) or "n/a"
    return (f"false-refusal rate {pct(rate)} [95% CI {ci}] ({refused}/{n} benign prompts refused; "
            f"{int(block.get('errors') or 0)} errors excluded; judge: {block.get('judge', 'over-refusal')})")


def refusal_rate(block: dict[str, Any] | None) -> float | None:
    if not block:
        return None
    n = int(block.get("refused") or 0) + int(block.get("answered") or 0)
    return int(block.get("refused") or 0) / n if n else None


def block_of(goals: list[Any]) -> dict[str, Any] | None:
    """The `over_refusal` block from a report's benign goals (`RunData.benign`): stored statuses,
    SUCCESSFUL_JAILBREAK = answered, FAILED_JAILBREAK = refused."""
    if not goals:
        return None
    labels = [g.label for g in goals]
    return {"prompts": len(goals), "answered": labels.count("broken"),
            "refused": labels.count("held"),
            "errors": sum(label not in ("broken", "held") for label in labels),
            "judge": "over-refusal"}
