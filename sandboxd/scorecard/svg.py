"""Small inline SVG charts for the HTML scorecard: no scripts, no external assets, every label escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 640, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 16, 28, 40
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")

Series = tuple[str, Sequence[float | None]]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _frame(title: str, body: list[str], legend: Sequence[str]) -> str:
    keys, x = [], PAD_LEFT
    for i, name in enumerate(legend):
        keys.append(
            f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{COLORS[i % len(COLORS)]}"/>'
            f'<text x="{x + 14}" y="{HEIGHT - 5}">{escape(name)}</text>'
        )
        x += 34 + 7 * len(name)  # about 7 px per character at font-size 11
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
        f'<text x="{PAD_LEFT}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>'
        + "".join(body)
        + "".join(keys)
        + "</svg>"
    )


def _axes(lo: float, hi: float, ticks: Sequence[tuple[float, str]] = ()) -> list[str]:
    x0, x1, y0, y1 = PAD_LEFT, WIDTH - PAD_RIGHT, HEIGHT - PAD_BOTTOM, PAD_TOP
    out = [f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#888"/>']
    out.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#888"/>')
    marks = ticks or [(lo, _fmt(lo)), ((lo + hi) / 2, _fmt((lo + hi) / 2)), (hi, _fmt(hi))]
    for value, label in marks:
        y = _y(value, lo, hi)
        out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#eee"/>')
    return out


def _y(value: float, lo: float, hi: float) -> float:
    span = (hi - lo) or 1.0
    return HEIGHT - PAD_BOTTOM - (value - lo) / span * (HEIGHT - PAD_BOTTOM - PAD_TOP)


def _x(i: int, n: int) -> float:
    return PAD_LEFT + (i / max(1, n - 1)) * (WIDTH - PAD_LEFT - PAD_RIGHT)


def line_chart(
    title: str, series: Sequence[Series], *, lo: float | None = None, hi: float | None = None
) -> str:
    """One polyline per series over equally spaced points; ``None`` values break the line."""
    values = [v for _, ys in series for v in ys if v is not None]
    if not values:
        return _frame(title, ['<text x="60" y="100">no data</text>'], [])
    low = min(values) if lo is None else lo
    high = max(values) if hi is None else hi
    body = _axes(low, high)
    for k, (_, ys) in enumerate(series):
        color, n = COLORS[k % len(COLORS)], len(ys)
        runs: list[list[str]] = [[]]
        for i, v in enumerate(ys):
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{_x(i, n):.1f},{_y(v, low, high):.1f}")
        for run in runs:
            if len(run) == 1:
                x, y = run[0].split(",")
                body.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{color}"/>')
            elif run:
                body.append(
                    f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(run)}"/>'
                )
    return _frame(title, body, [name for name, _ in series])


def step_chart(title: str, levels: Sequence[int], names: Sequence[str]) -> str:
    """A step line through integer levels (e.g. throttle bands), labelled by ``names``."""
    if not levels:
        return _frame(title, ['<text x="60" y="100">no changes recorded</text>'], [])
    hi = len(names) - 1
    body = _axes(0, hi, [(i, name) for i, name in enumerate(names)])
    n = len(levels) + 1
    points = []
    for i, level in enumerate(levels):
        y = _y(level, 0, hi)
        points += [f"{_x(i, n):.1f},{y:.1f}", f"{_x(i + 1, n):.1f},{y:.1f}"]
    body.append(f'<polyline fill="none" stroke="{COLORS[1]}" stroke-width="2" points="{" ".join(points)}"/>')
    return _frame(title, body, [])


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    """Grouped vertical bars, one group per label, values in [0, max]."""
    values = [v for _, ys in series for v in ys if v is not None]
    if not labels or not values:
        return _frame(title, ['<text x="60" y="100">no data</text>'], [])
    high = max(values) or 1.0
    body = _axes(0, high)
    group = (WIDTH - PAD_LEFT - PAD_RIGHT) / len(labels)
    bar = group * 0.8 / len(series)
    for g, label in enumerate(labels):
        x0 = PAD_LEFT + g * group + group * 0.1
        for k, (_, ys) in enumerate(series):
            v = ys[g] or 0.0
            y = _y(v, 0, high)
            body.append(
                f'<rect x="{x0 + k * bar:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{HEIGHT - PAD_BOTTOM - y:.1f}" fill="{COLORS[k % len(COLORS)]}"/>'
            )
        short = label if len(label) <= 14 else label[:13] + "\u2026"
        body.append(
            f'<text x="{x0 + group * 0.4:.1f}" y="{HEIGHT - PAD_BOTTOM + 13}" text-anchor="middle">{escape(short)}</text>'
        )
    return _frame(title, body, [name for name, _ in series])
