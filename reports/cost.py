"""A run's cost as one line: the total, and who was paid (target, judges, attacker models).

Attacker models called by techniques (past-tense reformulation, translation and translating the
answers back) are part of the run's spend and of its budget; they are shown apart so a team sees
what the attack itself cost next to what the target and the judges did.
"""

from __future__ import annotations

from tracking import RunSummary


def cost_breakdown(summary: RunSummary) -> dict[str, float] | None:
    return dict(summary.cost_breakdown) if summary.cost_breakdown is not None else None


def cost_line(summary: RunSummary) -> str:
    """"$0.0123 (target $0.0100, judges $0.0020, attacker $0.0003)"; just the total for a run
    recorded before the breakdown was kept."""
    total = summary.cost_usd
    parts = summary.cost_breakdown
    if parts is None:
        return f"${total:.4f}"
    return (f"${total:.4f} (target ${parts.get('target_usd', 0.0):.4f}, judges "
            f"${parts.get('judges_usd', 0.0):.4f}, attacker "
            f"${parts.get('attacker_usd', 0.0):.4f})")
