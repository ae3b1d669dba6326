"""A run's cost as one line: the total, and who was paid (target, judges, attacker models).

Attacker models called by techniques (past-tense reformulation, translation and translating the
answers back) are part of the run's spend and of its budget; they are shown apart so a team sees
what the attack itself cost next to what the target and the judges did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def cost_breakdown(summary: Mapping[str, Any]) -> dict[str, float] | None:
    block = summary.get("cost_breakdown")
    return dict(block) if isinstance(block, Mapping) else None


def cost_line(summary: Mapping[str, Any]) -> str:
    """"$0.0123 (target $0.0100, judges $0.0020, attacker $0.0003)"; just the total for a run
    recorded before the breakdown was kept."""
    total = float(summary.get("cost_usd") or 0.0)
    parts = cost_breakdown(summary)
    if parts is None:
        return f"${total:.4f}"
    return (f"${total:.4f} (target ${float(parts.get('target_usd') or 0):.4f}, judges "
            f"${float(parts.get('judges_usd') or 0):.4f}, attacker "
            f"${float(parts.get('attacker_usd') or 0):.4f})")
