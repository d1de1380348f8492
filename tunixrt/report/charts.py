"""Line charts and histograms as inline SVG: no script, no network, readable offline in any
browser."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

Series = Sequence[tuple[float, float]]
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
MAX_POINTS = 400


def _thin(points: Series) -> list[tuple[float, float]]:
    step = max(1, math.ceil(len(points) / MAX_POINTS))
    out = list(points[::step])
    if points and out[-1] != points[-1]:
        out.append(points[-1])
    return out


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        return [10.0**e for e in range(a, b + 1)]
    if hi == lo:
        return [lo]
    raw = (hi - lo) / 4
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0e}" if v and (abs(v) < 1e-2 or abs(v) >= 1e5) else f"{v:g}"


LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 40  # the margins around the plot area


def _open(title: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="16" class="title">{escape(title)}</text>',
    ]


def _y_grid(values: Sequence[float], py: Callable[[float], float], width: int) -> list[str]:
    """A grid line and a label at each y value."""
    return [
        f'<line x1="{LEFT}" y1="{py(v):.1f}" x2="{width - RIGHT}" y2="{py(v):.1f}" class="grid"/>'
        f'<text x="{LEFT - 6}" y="{py(v) + 4:.1f}" class="tick" text-anchor="end">'
        f"{_fmt(v)}</text>"
        for v in values
    ]


def _axes(
    x_ticks: Sequence[float], px: Callable[[float], float], x_label: str, width: int, height: int
) -> list[str]:
    """Both axes, the x tick labels and the x axis's label; then the closing tag."""
    return [
        f'<line x1="{LEFT}" y1="{height - BOTTOM}" x2="{width - RIGHT}" y2="{height - BOTTOM}" '
        'class="axis"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{height - BOTTOM}" class="axis"/>',
        *(
            f'<text x="{px(v):.1f}" y="{height - BOTTOM + 16}" class="tick" '
            f'text-anchor="middle">{_fmt(v)}</text>'
            for v in x_ticks
        ),
        f'<text x="{(LEFT + width - RIGHT) / 2}" y="{height - 6}" class="tick" '
        f'text-anchor="middle">{escape(x_label)}</text>',
        "</svg>",
    ]


def line_chart(
    series: dict[str, Series],
    *,
    title: str,
    x_label: str,
    log_y: bool = False,
    width: int = 560,
    height: int = 260,
) -> str:
    """One SVG with a line per series (name -> [(x, y)]), axes with ticks, and a legend."""
    data = {k: _thin([(x, y) for x, y in v if not log_y or y > 0]) for k, v in series.items()}
    points = [p for v in data.values() for p in v]
    if not points:
        return f'<p class="empty">{escape(title)}: no data</p>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys)
    if not log_y and y0 == y1:
        y0, y1 = y0 - 1, y1 + 1
    ty = _ticks(y0, y1, log_y)
    if log_y:
        y0, y1 = min(ty), max(ty)
        if y0 == y1:
            y1 = y0 * 10
    fy = (lambda v: math.log10(v)) if log_y else (lambda v: v)

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * (width - LEFT - RIGHT)

    def py(y: float) -> float:
        return TOP + (fy(y1) - fy(y)) / (fy(y1) - fy(y0)) * (height - TOP - BOTTOM)

    parts = _open(title, width, height) + _y_grid([v for v in ty if y0 <= v <= y1], py, width)
    for k, (name, pts) in enumerate(data.items()):
        color = COLORS[k % len(COLORS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>'
            f'<text x="{width - RIGHT - 4}" y="{TOP + 14 * (k + 1)}" text-anchor="end" '
            f'fill="{color}" class="legend">{escape(name)}</text>'
        )
    return "".join(parts + _axes(_ticks(x0, x1, False), px, x_label, width, height))


def histogram_chart(
    counts: Sequence[int],
    *,
    bin_width: float,
    title: str,
    x_label: str,
    marker: float | None = None,
    marker_label: str = "",
    width: int = 560,
    height: int = 260,
) -> str:
    """One SVG with a bar per bin (bin i covers [i * bin_width, (i + 1) * bin_width)), and a
    dashed vertical line at `marker` (e.g. the sequence length rows are cut to)."""
    if not counts or not any(counts):
        return f'<p class="empty">{escape(title)}: no data</p>'
    x1 = max(len(counts) * bin_width, marker or 0)
    y1 = max(counts)

    def px(x: float) -> float:
        return LEFT + x / x1 * (width - LEFT - RIGHT)

    def py(y: float) -> float:
        return TOP + (y1 - y) / y1 * (height - TOP - BOTTOM)

    ticks = [v for v in _ticks(0, y1, False) if v == int(v)] or [0, y1]
    parts = _open(title, width, height) + _y_grid(ticks, py, width)
    for i, c in enumerate(counts):
        if c:
            x, w = px(i * bin_width), px((i + 1) * bin_width) - px(i * bin_width)
            parts.append(
                f'<rect x="{x:.1f}" y="{py(c):.1f}" width="{max(w - 1, 1):.1f}" '
                f'height="{py(0) - py(c):.1f}" fill="{COLORS[0]}"><title>'
                f"{_fmt(i * bin_width)}-{_fmt((i + 1) * bin_width - 1)}: {c}</title></rect>"
            )
    if marker is not None:
        x = px(marker)
        near_right = x > width - RIGHT - 8 * len(marker_label)  # the label goes left of it
        tx, anchor = (x - 4, "end") if near_right else (x + 4, "start")
        parts.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{height - BOTTOM}" '
            f'stroke="{COLORS[1]}" stroke-width="1.5" stroke-dasharray="5,3" class="marker"/>'
            f'<text x="{tx:.1f}" y="{TOP + 12}" fill="{COLORS[1]}" text-anchor="{anchor}" '
            f'class="legend">{escape(marker_label)}</text>'
        )
    return "".join(parts + _axes(_ticks(0, x1, False), px, x_label, width, height))
