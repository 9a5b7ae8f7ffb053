"""Line charts as inline SVG, drawn on the server: no chart library to vendor, nothing fetched, and a page
that shows its curves with scripts off."""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

COLORS = ("#2563eb", "#dc2626", "#059669", "#d97706")
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 520, 200, 48, 12, 24, 28
MARKERS_MAX = 40


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def line_chart(title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]]) -> str:
    """An SVG chart of ``series`` (name, [(x, y)]); points that are not finite numbers are left out."""
    clean = [(name, [(float(x), float(y)) for x, y in pts if math.isfinite(float(x)) and math.isfinite(float(y))])
             for name, pts in series]
    clean = [(n, p) for n, p in clean if p]
    head = f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
    out = [head, f'<text x="{PAD_L}" y="15" class="chart-title">{escape(title)}</text>']
    if not clean:
        out.append(f'<text x="{PAD_L}" y="{H // 2}">no points yet</text></svg>')
        return "".join(out)
    xs = [x for _, p in clean for x, _ in p]
    ys = [y for _, p in clean for _, y in p]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1

    def sx(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R)

    def sy(y: float) -> float:
        return H - PAD_B - (y - y0) / (y1 - y0) * (H - PAD_T - PAD_B)

    out.append(f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="axis"/>')
    out.append(f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" class="axis"/>')
    for t in _ticks(y0, y1):
        out.append(f'<text x="{PAD_L - 4}" y="{sy(t) + 4:.1f}" text-anchor="end" class="tick">{t:g}</text>')
    for t in _ticks(x0, x1):
        out.append(f'<text x="{sx(t):.1f}" y="{H - PAD_B + 14}" text-anchor="middle" class="tick">{t:g}</text>')
    for i, (name, pts) in enumerate(clean):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>')
        if len(pts) <= MARKERS_MAX:  # a few points (checkpoints, probes) are drawn as points too: one is visible
            out.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"><title>{escape(name)} '
                       f'{y:.4g} at {x:g}</title></circle>' for x, y in pts)
        out.append(f'<text x="{W - PAD_R - 110 + 0}" y="{15 + 0}" dx="{i * 60}" fill="{color}" class="legend">'
                   f'{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
