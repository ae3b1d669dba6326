"""The false-refusal rate of a run's benign control set, next to the ASR.

A guardrail change shows up on both sides: fewer jailbreaks (ASR) and, often, more refused
harmless requests. The rate is refused / (answered + refused) over the benign prompts, with its
Wilson 95% interval; prompts whose target call failed or that could not be judged are excluded
and counted. The refusal judge's phrase list decides (`tasks.benign`).
"""

from __future__ import annotations

from reports.figures import ci_text, pct, wilson
from reports.load import GoalView
from tracking import OverRefusal


def refusal_line(block: OverRefusal | None) -> str | None:
    """One plain-text line from the summary's `over_refusal` block (None: no benign set)."""
    if block is None:
        return None
    n = block.refused + block.answered
    ci = ci_text(wilson(block.refused, n)) or "n/a"
    return (f"false-refusal rate {pct(refusal_rate(block))} [95% CI {ci}] "
            f"({block.refused}/{n} benign prompts refused; "
            f"{block.errors} errors excluded; judge: {block.judge})")


def refusal_rate(block: OverRefusal | None) -> float | None:
    if block is None:
        return None
    n = block.refused + block.answered
    return block.refused / n if n else None


def block_of(goals: list[GoalView]) -> OverRefusal | None:
    """The `over_refusal` block from a report's benign goals (`RunData.benign`): stored statuses,
    SUCCESSFUL_JAILBREAK = answered, FAILED_JAILBREAK = refused."""
    if not goals:
        return None
    labels = [g.label for g in goals]
    return OverRefusal(prompts=len(goals), answered=labels.count("broken"),
                       refused=labels.count("held"),
                       errors=sum(label not in ("broken", "held") for label in labels))
