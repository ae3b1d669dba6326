"""Which part of its goal set a run attacked, as every report says it ("30 of 200 goals of
harmbench:standard, random sample stratified by category, seed 7"; "first 10 of 100 goals of
..."): an ASR on a slice is not the set's ASR, so the slice is named wherever the ASR is.

Read from the run's config (`goal_selection`, recorded when the run opened); runs recorded
before it was recorded, and runs that used the whole set, say nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def selection_text(config: Mapping[str, Any] | None) -> str | None:
    """The subset sentence, or None when the run used its whole set (or did not record it)."""
    selection = (config or {}).get("goal_selection")
    if not isinstance(selection, Mapping):
        return None
    used, total = selection.get("used"), selection.get("total")
    if not isinstance(used, int) or not isinstance(total, int):
        return None
    if used >= total and not selection.get("categories"):
        return None
    text = selection.get("text")
    return str(text) if text else f"{used} of {total} goals of {selection.get('source')}"
