"""HTML report at scale: a 5,000-goal run's file size, render time and open time in Chromium.

The run is written straight through the store (`tests/reports/synthetic.py`: a flow run of
5,000 goals takes far too long for a benchmark), then loaded and rendered as `siegeflow report`
does, and opened in Debian's headless Chromium over the DevTools protocol. "Open" is measured
from the navigation request to the first frame painted after the load event. Also: an
optimizer run of the same size (3 runs per goal, 12 trace events each goal).

    .venv/bin/python bench/report_bench.py [--goals 5000] [--opens 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reports.scale import OPEN_LIMIT_S, SIZE_LIMIT, measure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=5000)
    parser.add_argument("--opens", type=int, default=3)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="siegeflow-report-bench-") as tmp:
        for label, runs in (("attack run", 0), ("optimizer run", 3)):
            m = measure(Path(tmp), args.goals, runs, args.opens)
            print(f"{args.goals}-goal {label}: file {m['size_bytes'] / 1e6:.2f} MB; store read "
                  f"{m['load_s']:.2f} s, render {m['render_s']:.2f} s; Chromium open (to first "
                  f"frame after load) first {m['open_first_s']:.2f} s, median of {args.opens} "
                  f"{m['open_median_s']:.2f} s (load event {m['load_event_first_s']:.2f} s); "
                  f"sort {m['sort_s'] * 1000:.0f} ms, filter ~{max(0, m['filter_s']) * 1000:.0f} ms")
            if m["size_bytes"] >= SIZE_LIMIT or m["open_median_s"] >= OPEN_LIMIT_S:
                print(f"  OVER LIMIT: size < {SIZE_LIMIT / 1e6:.0f} MB and open < {OPEN_LIMIT_S} s "
                      "expected")
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
