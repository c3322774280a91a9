"""A metric across tags as a self-contained SVG chart (or an HTML page around it).

Hand-written SVG so that a chart needs no plotting library and no network: one x
position per tag (in the order given), one polyline with markers per metric, broken
where a tag lacks the metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

__all__ = ["nice_ticks", "render_html", "render_svg"]

#: Chart size and margins, in SVG user units (pixels).
WIDTH = 800
HEIGHT = 480
MARGIN_LEFT = 80
MARGIN_RIGHT = 170  # the legend sits here
MARGIN_TOP = 40
MARGIN_BOTTOM = 110  # rotated tag labels sit here

#: Line colours, one per metric, repeated past the tenth (colour-blind safe "tab10").
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)

#: Tag labels longer than this are rotated so neighbours do not overlap.
ROTATE_OVER = 6


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering ``low``..``high``.

    Args:
        low: the smallest value shown.
        high: the largest value shown.
        count: about how many ticks.

    Returns:
        Ascending tick values, the first <= low and the last >= high.
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 12))
    return ticks


def _label(value: float) -> str:
    """A tick value as people write it: ``0.85``, ``1200``, ``1e-06``."""
    return f"{value:.6g}"


def render_svg(
    tags: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    title: str = "",
) -> str:
    """The chart as an SVG document.

    Args:
        tags: the x axis, left to right (oldest tag first).
        series: metric name -> one value per tag (None where the tag lacks it).
        title: the chart's title; the metric names if empty.

    Returns:
        A standalone SVG document; every text from the records is XML-escaped.
    """
    values = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    ticks = nice_ticks(min(values), max(values)) if values else [0.0, 1.0]
    y_low, y_high = ticks[0], ticks[-1]
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    bottom = MARGIN_TOP + plot_h

    def x_of(i: int) -> float:
        if len(tags) == 1:
            return MARGIN_LEFT + plot_w / 2
        return MARGIN_LEFT + plot_w * i / (len(tags) - 1)

    def y_of(v: float) -> float:
        return bottom - plot_h * (v - y_low) / (y_high - y_low)

    title = title or ", ".join(series)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text class="title" x="{WIDTH / 2:.1f}" y="22" text-anchor="middle" '
        f'font-size="15">{escape(title)}</text>',
        # Axes.
        f'<line class="axis" x1="{MARGIN_LEFT}" y1="{bottom}" x2="{MARGIN_LEFT + plot_w}" '
        f'y2="{bottom}" stroke="black"/>',
        f'<line class="axis" x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}" '
        f'y2="{bottom}" stroke="black"/>',
    ]
    for tick in ticks:
        y = y_of(tick)
        out.append(
            f'<line x1="{MARGIN_LEFT - 5}" y1="{y:.1f}" x2="{MARGIN_LEFT + plot_w}" '
            f'y2="{y:.1f}" stroke="#ddd"/>'
        )
        out.append(
            f'<text class="ytick" x="{MARGIN_LEFT - 8}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(_label(tick))}</text>'
        )
    rotate = any(len(tag) > ROTATE_OVER for tag in tags)
    for i, tag in enumerate(tags):
        x, y = x_of(i), bottom + 16
        out.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="black"/>'
        )
        turn = f' transform="rotate(-45 {x:.1f} {y:.1f})"' if rotate else ""
        anchor = "end" if rotate else "middle"
        out.append(
            f'<text class="xtick" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{turn}>'
            f"{escape(tag)}</text>"
        )
    for n, (name, vs) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        out.append(f'<g class="series" data-metric={quoteattr(name)}>')
        # A tag without the metric breaks the line: one polyline per unbroken run.
        run: list[str] = []
        for i, v in enumerate([*vs, None]):
            if v is not None and math.isfinite(v):
                run.append(f"{x_of(i):.1f},{y_of(v):.1f}")
                continue
            if run:
                out.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                    'stroke-width="2"/>'
                )
            run = []
        for i, v in enumerate(vs):
            if v is not None and math.isfinite(v):
                tip = escape(f"{name} @ {tags[i]}: {_label(v)}")
                out.append(
                    f'<circle cx="{x_of(i):.1f}" cy="{y_of(v):.1f}" r="3.5" '
                    f'fill="{colour}"><title>{tip}</title></circle>'
                )
        out.append("</g>")
        ly = MARGIN_TOP + 10 + 20 * n
        lx = WIDTH - MARGIN_RIGHT + 15
        out.append(
            f'<g class="legend"><line x1="{lx}" y1="{ly}" x2="{lx + 20}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"/><text x="{lx + 26}" y="{ly + 4}">'
            f"{escape(name)}</text></g>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render_html(svg: str, title: str) -> str:
    """A minimal HTML page around ``svg``: no scripts, no styles fetched."""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>\n<body>\n{svg}</body></html>\n"
    )
