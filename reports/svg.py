"""Inline SVG bar charts of attack success rates with their 95% intervals.

Generated here rather than drawn by a charting library at view time: the report must open with
no network and run no code but its own one script. Labels come from goal files and technique
names, so every one is escaped; the SVG uses presentation attributes only (no `style`), which
keeps it within the page's Content-Security-Policy.
"""

from __future__ import annotations

from reports.figures import Rate, pct
from reports.text import html_escape

WIDTH = 600
LABEL_W = 180
VALUE_W = 130
ROW_H = 24
BAR_H = 14
TOP = 22


def _x(value: float, plot_w: float) -> float:
    return LABEL_W + value * plot_w


def bar_chart(title: str, rates: list[Rate], *, limit: int = 40) -> str:
    """Horizontal bars (ASR) with Wilson-interval whiskers; at most `limit` bars, busiest first."""
    shown = sorted(rates, key=lambda r: (-r.judged, r.label))[:limit]
    shown.sort(key=lambda r: (-(r.asr if r.asr is not None else -1.0), r.label))
    plot_w = WIDTH - LABEL_W - VALUE_W
    height = TOP + ROW_H * max(1, len(shown)) + 8
    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{html_escape(title)}</title>",
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = _x(tick, plot_w)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{height - 6}" stroke="#d0d4da" '
            f'stroke-width="1"/><text x="{x:.1f}" y="{TOP - 8}" font-size="10" fill="#667" '
            f'text-anchor="middle">{int(tick * 100)}%</text>'
        )
    if not shown:
        out.append(f'<text x="{LABEL_W}" y="{TOP + 14}" font-size="12" fill="#667">no data</text>')
    for i, rate in enumerate(shown):
        y = TOP + i * ROW_H
        mid = y + ROW_H / 2
        label = html_escape(rate.label, 26)
        out.append(
            f'<g><title>{html_escape(rate.label, 200)}: {pct(rate.asr)} of {rate.judged} judged '
            f'goals; {rate.errors} errors and {rate.pending} pending excluded</title>'
            f'<text x="{LABEL_W - 8}" y="{mid + 4:.1f}" font-size="12" fill="#223" '
            f'text-anchor="end">{label}</text>'
        )
        if rate.asr is not None:
            w = max(rate.asr * plot_w, 1.0)
            out.append(
                f'<rect x="{LABEL_W}" y="{mid - BAR_H / 2:.1f}" width="{w:.1f}" height="{BAR_H}" '
                f'fill="#d9534f" rx="2"/>'
            )
        ci = rate.ci
        if ci is not None:
            lo, hi = _x(ci[0], plot_w), _x(ci[1], plot_w)
            out.append(
                f'<path d="M{lo:.1f} {mid:.1f}H{hi:.1f}M{lo:.1f} {mid - 5:.1f}V{mid + 5:.1f}'
                f'M{hi:.1f} {mid - 5:.1f}V{mid + 5:.1f}" stroke="#222" stroke-width="1.3" '
                f'fill="none"/>'
            )
        value = "n/a" if rate.asr is None else f"{pct(rate.asr)} ({rate.broken}/{rate.judged})"
        out.append(
            f'<text x="{WIDTH - VALUE_W + 8}" y="{mid + 4:.1f}" font-size="12" '
            f'fill="#223">{value}</text></g>'
        )
    out.append("</svg>")
    if len(rates) > len(shown):
        out.append(
            f'<p class="note">{len(rates) - len(shown)} more with fewer judged goals: see the '
            "table below.</p>"
        )
    return "".join(out)
