"""The report's Best-of-N section: ASR against N (samples) and against cost, as inline SVG.

Step curves, as the empirical curve is a step function (see `reports.bon`); the N axis is
logarithmic like the paper's power-law plots. Same rules as `reports.svg`: presentation
attributes only (the page's Content-Security-Policy), every label escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from reports.bon import BonCurve, bon_curve
from reports.figures import ci_text, pct, wilson
from reports.load import RunData
from reports.text import html_escape as e

WIDTH, HEIGHT = 460, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 14, 40


def _scale(lo: float, hi: float, log: bool) -> Callable[[float], float]:
    span_w = WIDTH - LEFT - RIGHT
    if log:
        a, b = math.log10(max(lo, 1.0)), math.log10(max(hi, lo + 1.0))
        return lambda v: LEFT + (math.log10(max(v, 1.0)) - a) / ((b - a) or 1.0) * span_w
    return lambda v: LEFT + (v - lo) / ((hi - lo) or 1.0) * span_w


def _y(asr: float) -> float:
    return TOP + (1.0 - asr) * (HEIGHT - TOP - BOTTOM)


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        return [10.0**p for p in range(0, int(math.log10(max(hi, 1.0))) + 1)]
    return [lo + (hi - lo) * i / 4 for i in range(5)]


def step_chart(title: str, xs: list[float], ys: list[float], *, x_label: str, log: bool,
               fmt: Callable[[float], str]) -> str:
    """A step curve of ASR (0..100%) against `xs`, one dot per step."""
    lo, hi = (1.0 if log else 0.0), max(max(xs, default=1.0), 1e-9)
    x = _scale(lo, hi, log)
    out = [f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
           f'height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg"><title>{e(title)}</title>']
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{LEFT}" y1="{_y(t):.1f}" x2="{WIDTH - RIGHT}" y2="{_y(t):.1f}" '
                   f'stroke="#d0d4da"/><text x="{LEFT - 6}" y="{_y(t) + 4:.1f}" font-size="10" '
                   f'fill="#667" text-anchor="end">{int(t * 100)}%</text>')
    for t in _ticks(lo, hi, log):
        out.append(f'<text x="{x(t):.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="10" fill="#667" '
                   f'text-anchor="middle">{e(fmt(t))}</text>')
    out.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 6}" font-size="11" '
               f'fill="#223" text-anchor="middle">{e(x_label)}</text>')
    if xs:
        path = [f"M{x(xs[0]):.1f} {_y(ys[0]):.1f}"]
        for xv, yv in zip(xs[1:], ys[1:]):
            path.append(f"H{x(xv):.1f}V{_y(yv):.1f}")
        out.append(f'<path d="{"".join(path)}" stroke="#d9534f" stroke-width="2" fill="none"/>')
        for xv, yv in zip(xs, ys):
            out.append(f'<circle cx="{x(xv):.1f}" cy="{_y(yv):.1f}" r="2.5" fill="#d9534f">'
                       f"<title>{e(fmt(xv))}: {pct(yv)}</title></circle>")
    out.append("</svg>")
    return "".join(out)


def curve_of(data: RunData) -> BonCurve | None:
    """The run's Best-of-N curve, or None when the run has no Best-of-N samples."""
    if data.aggregates is not None:
        return data.aggregates.bon
    rows = [r for g in data.goals for r in g.rows]
    if not any(r.technique == "bon" for r in rows):
        return None
    n = ((data.run.parameters or {}).get("attack") or {}).get("options", {}).get("n")
    return bon_curve(rows, data.threshold, n if isinstance(n, int) else None)


def bon_section(data: RunData) -> str:
    curve = curve_of(data)
    if curve is None or not curve.points:
        return ""
    ks = [float(p.k) for p in curve.points]
    ys = [p.asr for p in curve.points]
    costs = [p.cost_usd for p in curve.points]
    final = curve.points[-1]
    ci = ci_text(wilson(final.broken, curve.goals))
    n_text = "" if curve.n is None else f" (N = {curve.n})"
    by_n = step_chart("ASR against samples per goal", ks, ys, x_label="samples per goal (k, log)",
                      log=True, fmt=lambda v: f"{v:g}")
    by_cost = step_chart("ASR against cost", costs, ys, x_label="cost of the first k samples (USD)",
                         log=False, fmt=lambda v: f"${v:.3g}")
    return (
        '<section id="bon"><h2>Best-of-N: ASR against N</h2>'
        f'<div class="charts"><div><h3>Against samples</h3>{by_n}</div>'
        f"<div><h3>Against cost</h3>{by_cost}</div></div>"
        f'<p class="note">ASR@{final.k}{e(n_text)} = {pct(final.asr)} [{ci or "n/a"}] '
        f"({final.broken}/{curve.goals} judged goals; {curve.error_goals} error goals "
        f"excluded). {curve.samples} samples sent, {curve.sample_errors} of them target errors "
        "(recorded, not counted as failed samples). Method: empirical — the fraction of judged "
        "goals broken within their first k samples; each goal stopped at its first success, "
        "cost at k is what the samples with index below k cost.</p></section>"
    )
