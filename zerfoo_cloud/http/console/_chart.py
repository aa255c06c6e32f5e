"""
The usage chart, drawn on the server as SVG: stacked bars of tokens per
day, one colour per model or key, with axis labels, a legend, and a title
and description for screen readers.

The SVG holds no script, no ``style`` attribute or element and no event
handler: colours are presentation attributes (``fill``), which a Content
Security Policy without ``'unsafe-inline'`` allows. Every text taken from
records (model names, key ids) is escaped and cleaned of characters XML
cannot hold. Axis values are computed in integers, so counts of any size
(up to and past 2**63) place exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from html import escape

__all__ = [
    "MAX_SERIES",
    "OTHER",
    "PALETTE",
    "nice_ticks",
    "render_usage_chart",
    "series_label",
    "short_number",
    "xml_text",
]

#: Series colours (Okabe and Ito's palette, told apart by colour-blind
#: readers too); the last one is for `OTHER`.
PALETTE = (
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#d55e00",
    "#f0e442",
    "#000000",
    "#999999",
)
#: The most series drawn apart; the rest are drawn together as `OTHER`.
MAX_SERIES = len(PALETTE) - 1
#: The legend's name for the series drawn together.
OTHER = "(all others)"
#: The longest name the legend shows whole.
_MAX_LABEL = 40
#: How many axis ticks to aim for.
_TICKS = 5
#: How many dates the x axis labels at most.
_DATE_LABELS = 8
#: Characters XML 1.0 cannot hold (controls but tab, line feed and
#: carriage return; surrogates; U+FFFE and U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_UNITS = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "k"))
#: From here on, ticks are written as ``1.2e15``.
_SCIENTIFIC = 10**15
#: The widest bar, in the view box's units (one day alone is not a wall).
_MAX_BAR = 48.0

# Layout, in the view box's units.
_WIDTH = 960
_PLOT_LEFT = 72
_PLOT_RIGHT = _WIDTH - 16
_PLOT_TOP = 16
_PLOT_BOTTOM = 256
_LEGEND_TOP = 296
_LEGEND_ROW = 22
_LEGEND_COLUMNS = 3
_LEGEND_COLUMN = (_PLOT_RIGHT - _PLOT_LEFT) // _LEGEND_COLUMNS


def xml_text(text: str) -> str:
    """
    *text* as SVG or HTML text and attribute values may hold it: ``& < > "
    '`` escaped, characters XML cannot hold replaced by U+FFFD.

    .. versionadded:: 0.1.0
    """
    return escape(_NOT_XML.sub("\ufffd", text), quote=True)


def series_label(name: str, split: str) -> str:
    """
    How a model or key id is named on the page: itself, cut to 40
    characters, or ``(no model)``/``(no key)`` when empty. Not escaped.

    .. versionadded:: 0.1.0
    """
    if not name:
        return "(no model)" if split == "model" else "(no key)"
    if len(name) > _MAX_LABEL:
        return name[: _MAX_LABEL - 1] + "…"
    return name


def short_number(value: int) -> str:
    """
    *value* (an integer, 0 or more) in the short form of axis ticks:
    ``999``, ``1.2k``, ``3M``, ``1.5B``, ``12.3T``, and from a thousand
    trillion on ``1.2e15``; the digit after the point is cut, never rounded
    up, and left out when it is 0.

    .. versionadded:: 0.1.0
    """
    if value >= _SCIENTIFIC:
        exponent = len(str(value)) - 1
        return _tenths(value, 10**exponent, f"e{exponent}")
    for unit, suffix in _UNITS:
        if value >= unit:
            return _tenths(value, unit, suffix)
    return str(value)


def _tenths(value: int, unit: int, suffix: str) -> str:
    whole, tenth = divmod(value * 10 // unit, 10)
    return f"{whole}{suffix}" if tenth == 0 else f"{whole}.{tenth}{suffix}"


def nice_ticks(maximum: int, count: int = _TICKS) -> list[int]:
    """
    The values of the y axis of a chart whose largest bar is *maximum*:
    ``0, step, 2*step, ...`` up to the first multiple of *step* at or above
    *maximum*, where *step* is the smallest of 1, 2 or 5 times a power of
    ten that needs at most *count* steps. *maximum* 0 gives ``[0, 1]``.

    Integer arithmetic only: any *maximum* is placed exactly.

    .. versionadded:: 0.1.0
    """
    if maximum <= 0:
        return [0, 1]
    power = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * power
            if step * count >= maximum:
                top = -(-maximum // step) * step
                return list(range(0, top + 1, step))
        power *= 10


def _coord(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _grouped(
    days: Sequence[tuple[date, dict[str, int]]], series: Sequence[str]
) -> tuple[list[str], list[tuple[date, list[int]]]]:
    # The series drawn apart (MAX_SERIES of them; the rest as OTHER) and
    # each day's tokens per drawn series.
    shown = list(series[:MAX_SERIES])
    rest = len(series) > MAX_SERIES
    columns = []
    for day, tokens in days:
        values = [tokens.get(name, 0) for name in shown]
        if rest:
            values.append(sum(tokens.get(name, 0) for name in series[MAX_SERIES:]))
        columns.append((day, values))
    return shown, columns


class _Plot:
    """
    Where values and days land in the plot area.
    """

    def __init__(self, top: int, days: int) -> None:
        self.top = top
        self.slot = (_PLOT_RIGHT - _PLOT_LEFT) / max(days, 1)
        self.width = min(max(self.slot * 0.8, 1.0), _MAX_BAR)

    def y(self, value: int) -> float:
        # Integer division first, so huge counts place exactly.
        height = _PLOT_BOTTOM - _PLOT_TOP
        return _PLOT_BOTTOM - (value * 10_000 // self.top) * height / 10_000

    def bar_x(self, index: int) -> str:
        return _coord(_PLOT_LEFT + index * self.slot + (self.slot - self.width) / 2)

    def middle_x(self, index: int) -> str:
        return _coord(_PLOT_LEFT + (index + 0.5) * self.slot)


def _y_axis(ticks: Sequence[int], plot: _Plot) -> list[str]:
    out = []
    for tick in ticks:
        y = _coord(plot.y(tick))
        out.append(
            f'<line x1="{_PLOT_LEFT}" x2="{_PLOT_RIGHT}" y1="{y}" y2="{y}" '
            f'stroke="#dddddd" stroke-width="1"/>'
            f'<text x="{_PLOT_LEFT - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle" fill="#333333">{short_number(tick)}</text>'
        )
    middle = (_PLOT_TOP + _PLOT_BOTTOM) // 2
    out.append(
        f'<text x="14" y="{middle}" text-anchor="middle" '
        f'transform="rotate(-90 14 {middle})" fill="#333333">tokens</text>'
    )
    return out


def _bars(
    columns: Sequence[tuple[date, list[int]]], names: Sequence[str], plot: _Plot
) -> list[str]:
    out = []
    width = _coord(plot.width)
    for index, (day, values) in enumerate(columns):
        x = plot.bar_x(index)
        below = 0
        for part, value in enumerate(values):
            if not value:
                continue
            y_top, y_bottom = plot.y(below + value), plot.y(below)
            below += value
            out.append(
                f'<rect x="{x}" y="{_coord(y_top)}" width="{width}" '
                f'height="{_coord(max(y_bottom - y_top, 0.5))}" '
                f'fill="{PALETTE[min(part, MAX_SERIES)]}">'
                f"<title>{day.isoformat()}: {xml_text(names[part])}, "
                f"{value:,} tokens</title></rect>"
            )
    return out


def _x_axis(days: Sequence[date], plot: _Plot) -> list[str]:
    axis = (
        f'<line x1="{_PLOT_LEFT}" x2="{_PLOT_RIGHT}" y1="{_PLOT_BOTTOM}" '
        f'y2="{_PLOT_BOTTOM}" stroke="#333333" stroke-width="1"/>'
    )
    out = [axis]
    every = -(-len(days) // _DATE_LABELS)
    for index in range(0, len(days), every):
        text = days[index].isoformat()
        out.append(
            f'<text x="{plot.middle_x(index)}" y="{_PLOT_BOTTOM + 18}" '
            f'text-anchor="middle" fill="#333333">'
            f"{text if index == 0 else text[5:]}</text>"
        )
    return out


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for index, name in enumerate(names):
        row, column = divmod(index, _LEGEND_COLUMNS)
        x = _PLOT_LEFT + column * _LEGEND_COLUMN
        y = _LEGEND_TOP + row * _LEGEND_ROW
        out.append(
            f'<g data-testid="usage-chart-legend-item">'
            f'<rect x="{x}" y="{y - 10}" width="12" height="12" '
            f'fill="{PALETTE[min(index, MAX_SERIES)]}"/>'
            f'<text x="{x + 18}" y="{y}" fill="#333333">{xml_text(name)}</text></g>'
        )
    return out


def _description(columns: Sequence[tuple[date, list[int]]], split: str) -> str:
    total = sum(sum(values) for _, values in columns)
    first = columns[0][0].isoformat() if columns else ""
    last = columns[-1][0].isoformat() if columns else ""
    if not total:
        return f"No tokens were used from {first} to {last}."
    kind = "model" if split == "model" else "API key"
    return (
        f"Stacked bars of tokens per day by {kind}, {first} to {last}: "
        f"{total:,} tokens in all."
    )


def render_usage_chart(
    days: Sequence[tuple[date, dict[str, int]]],
    series: Sequence[str],
    split: str,
    *,
    title: str = "Tokens per day",
) -> str:
    """
    The SVG of stacked bars of tokens per day.

    Args:
        days: every day of the range with its tokens per series
            (`UsageReport.tokens_by_day`), oldest first.
        series: the series, in the order they stack from the axis up
            (`UsageReport.series`: most tokens first); past `MAX_SERIES`,
            the rest are one bar part, `OTHER`.
        split: ``"model"`` or ``"key"``: what the series are.
        title: the chart's accessible title.

    Returns:
        One ``<svg>`` element (``role="img"``, a ``<title>`` and a
        ``<desc>`` that says the range and the total, each bar part with a
        ``<title>`` saying its day, series and tokens).

    .. versionadded:: 0.1.0
    """
    shown, columns = _grouped(days, series)
    names = [series_label(name, split) for name in shown]
    if len(series) > MAX_SERIES:
        names.append(OTHER)
    totals = [sum(values) for _, values in columns]
    ticks = nice_ticks(max(totals, default=0))
    plot = _Plot(ticks[-1], len(columns))
    height = _LEGEND_TOP + -(-len(names) // _LEGEND_COLUMNS) * _LEGEND_ROW
    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {height}" '
            'role="img" aria-labelledby="usage-chart-title usage-chart-desc" '
            'class="usage-chart" data-testid="usage-chart" '
            'font-family="sans-serif" font-size="12">'
        ),
        f'<title id="usage-chart-title">{xml_text(title)}</title>',
        f'<desc id="usage-chart-desc">{xml_text(_description(columns, split))}</desc>',
        *_y_axis(ticks, plot),
        *_bars(columns, names, plot),
    ]
    if not any(totals):
        out.append(
            f'<text x="{(_PLOT_LEFT + _PLOT_RIGHT) // 2}" '
            f'y="{(_PLOT_TOP + _PLOT_BOTTOM) // 2}" text-anchor="middle" '
            'fill="#333333" data-testid="usage-chart-empty">'
            "No usage in this range</text>"
        )
    out.extend(_x_axis([day for day, _ in columns], plot))
    out.extend(_legend(names))
    out.append("</svg>")
    return "".join(out)
