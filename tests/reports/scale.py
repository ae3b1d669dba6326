"""Measuring the HTML report at scale (shared by the slow test and `bench/report_bench.py`).

A 5,000-goal run is written straight through the store (`synthetic.py`), loaded and rendered as
`siegeflow report` does, and opened in headless Chromium: "open" runs from the navigation
request to the first frame painted after the load event.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from reports.html import render_report
from reports.load import load_run
from tests.reports.chromium import browser, open_timing
from tests.reports.synthetic import record_synthetic_run
from tracking import get_backend

SIZE_LIMIT = 10_000_000
OPEN_LIMIT_S = 2.0


def measure(folder: Path, goals: int, optimizer_runs: int, opens: int) -> dict[str, float]:
    backend = get_backend(f"sqlite:///{folder / f'bench-{optimizer_runs}.db'}")
    run_id = record_synthetic_run(backend, goals, optimizer_runs=optimizer_runs)
    start = time.perf_counter()
    data = load_run(backend, run_id)
    loaded = time.perf_counter() - start
    html = render_report(data)
    rendered = time.perf_counter() - start - loaded
    path = folder / f"report-{optimizer_runs}.html"
    path.write_text(html, encoding="utf-8")
    timings = []
    with browser() as chromium:
        page = chromium.new_page()
        for _ in range(opens):
            timings.append(open_timing(page, path.resolve().as_uri()))
        sort_s = page.evaluate("""(() => { const t = performance.now();
          document.querySelectorAll('#goals-table [role=columnheader] button')[9].click();
          return (performance.now() - t) / 1000; })()""")
        filter_s = page.evaluate("""new Promise(r => {
          const out = document.querySelector('.filters output'), before = out.textContent;
          const q = document.querySelector('[data-filter=text]'), t = performance.now();
          q.value = 'goal 4'; q.dispatchEvent(new Event('input'));
          (function poll() { if (out.textContent !== before) r((performance.now() - t) / 1000);
                             else setTimeout(poll, 2); })(); })""") - 0.15  # minus debounce
    painted = [t["painted_s"] for t in timings]
    return {
        "size_bytes": path.stat().st_size, "load_s": loaded, "render_s": rendered,
        "open_first_s": painted[0], "open_median_s": statistics.median(painted),
        "load_event_first_s": timings[0]["load_s"], "sort_s": sort_s, "filter_s": filter_s,
    }
