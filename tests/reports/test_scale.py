"""A 5,000-goal run renders to a file under 10 MB that Chromium opens in under 2 s."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reports.scale import OPEN_LIMIT_S, SIZE_LIMIT, measure

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("optimizer_runs", [0, 3], ids=["attack-run", "optimizer-run"])
def test_five_thousand_goals_stay_small_and_open_fast(tmp_path: Path, optimizer_runs: int) -> None:
    m = measure(tmp_path, 5000, optimizer_runs, opens=3)
    assert m["size_bytes"] < SIZE_LIMIT, m
    assert m["open_median_s"] < OPEN_LIMIT_S, m
    assert m["sort_s"] < 1.0 and m["filter_s"] < 1.0, m
