"""
The server-side usage chart: tick math (with Hypothesis), short numbers,
and SVG that holds no script or inline style and escapes hostile names.
"""

from __future__ import annotations

import itertools
import re
from datetime import date, timedelta
from xml.etree import ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from zerfoo_cloud.http.console._chart import (
    MAX_SERIES,
    OTHER,
    nice_ticks,
    render_usage_chart,
    series_label,
    short_number,
    xml_text,
)

SVG = "{http://www.w3.org/2000/svg}"
DAY = date(2026, 3, 1)


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _text(root: ET.Element, tag: str) -> str:
    found = root.find(f"{SVG}{tag}")
    assert found is not None
    return found.text or ""


def _days(count: int, tokens: dict[str, int]) -> list[tuple[date, dict[str, int]]]:
    return [(DAY + timedelta(days=n), dict(tokens)) for n in range(count)]


@given(
    st.integers(min_value=1, max_value=2**130), st.integers(min_value=1, max_value=12)
)
def test_ticks_cover_the_maximum_with_a_nice_step(maximum: int, count: int) -> None:
    """Ticks start at 0, step evenly by 1, 2 or 5 times a power of ten, and end at the first step at or above the maximum."""
    ticks = nice_ticks(maximum, count)
    step = ticks[1]
    assert ticks[0] == 0
    assert all(b - a == step for a, b in itertools.pairwise(ticks))
    assert ticks[-1] >= maximum > ticks[-1] - step
    assert len(ticks) - 1 <= count
    digits = str(step).rstrip("0")
    assert digits in {"1", "2", "5"}


@given(
    st.integers(min_value=1, max_value=2**130), st.integers(min_value=1, max_value=12)
)
def test_step_is_the_smallest_nice_one(maximum: int, count: int) -> None:
    """The next smaller nice step would need more than count steps."""
    step = nice_ticks(maximum, count)[1]
    lead, zeros = int(str(step)[0]), len(str(step)) - 1
    smaller = {1: (5, zeros - 1), 2: (1, zeros), 5: (2, zeros)}[lead]
    if smaller[1] >= 0:
        assert smaller[0] * 10 ** smaller[1] * count < maximum


@given(st.integers(min_value=1, max_value=2**80))
def test_tick_labels_are_distinct(maximum: int) -> None:
    """Every tick of an axis has its own short label."""
    labels = [short_number(t) for t in nice_ticks(maximum)]
    assert len(set(labels)) == len(labels)


def test_zero_maximum_still_has_an_axis() -> None:
    """A chart of no data gets the axis 0 to 1."""
    assert nice_ticks(0) == [0, 1]


def test_short_numbers() -> None:
    """Short numbers use k, M, B and T, then e notation, one digit after the point, cut not rounded."""
    assert short_number(0) == "0"
    assert short_number(999) == "999"
    assert short_number(1000) == "1k"
    assert short_number(1250) == "1.2k"
    assert short_number(1_999_999) == "1.9M"
    assert short_number(1_200_000) == "1.2M"
    assert short_number(3 * 10**9) == "3B"
    assert short_number(999 * 10**12) == "999T"
    assert short_number(10**15) == "1e15"
    assert short_number(2**63 - 1) == "9.2e18"


def test_hostile_names_are_escaped() -> None:
    """Names with markup, quotes and XML-illegal characters become harmless text."""
    hostile = '</title><script>alert(1)</script>"\x00\x1b\ud800'
    svg = render_usage_chart(_days(2, {hostile: 5}), [hostile], "model")
    assert "<script" not in svg
    root = _parse(svg)
    texts = [el.text or "" for el in root.iter() if el.text]
    assert any("<script>" in t for t in texts)
    assert "\x00" not in svg
    assert xml_text('a"<&') == "a&quot;&lt;&amp;"


def test_no_script_no_style_no_handlers() -> None:
    """The SVG has no script, no style attribute or element and no on* attribute."""
    svg = render_usage_chart(_days(3, {"a": 1, "b": 2}), ["b", "a"], "key")
    root = _parse(svg)
    for el in root.iter():
        assert el.tag not in {f"{SVG}script", f"{SVG}style", f"{SVG}foreignObject"}
        assert "style" not in el.attrib
        assert not any(name.startswith("on") for name in el.attrib)


def test_accessible_title_and_description() -> None:
    """The chart is an image labelled by its title and a description with range and total."""
    root = _parse(render_usage_chart(_days(2, {"a": 1500}), ["a"], "model"))
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "usage-chart-title usage-chart-desc"
    assert _text(root, "title") == "Tokens per day"
    desc = _text(root, "desc")
    assert "2026-03-01 to 2026-03-02" in desc
    assert "3,000 tokens" in desc


def test_no_data() -> None:
    """Days without tokens draw no bars and say so."""
    svg = render_usage_chart(_days(5, {}), [], "model")
    root = _parse(svg)
    assert not [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert "No usage in this range" in svg
    assert "No tokens were used" in _text(root, "desc")


def test_one_day_and_366_days() -> None:
    """One day draws one bar; 366 days draw 366 bars and label at most 8 dates."""
    one = _parse(render_usage_chart(_days(1, {"a": 7}), ["a"], "model"))
    bars = [r for r in one.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 1
    assert float(bars[0].get("width", "0")) == 48
    many = _parse(render_usage_chart(_days(366, {"a": 7}), ["a"], "model"))
    bars = [r for r in many.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 366
    dates = [
        t.text
        for t in many.iter(f"{SVG}text")
        if re.fullmatch(r"[\d-]+", t.text or "") and "-" in (t.text or "")
    ]
    assert 1 < len(dates) <= 8
    assert all(float(b.get("width", "0")) > 0 for b in bars)


def test_huge_numbers_place_exactly() -> None:
    """Counts past 2**63 stack within the plot and the axis reads them short."""
    big = 2**63 - 1
    svg = render_usage_chart(_days(2, {"a": big, "b": big}), ["a", "b"], "model")
    root = _parse(svg)
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 4
    for rect in bars:
        assert 16 <= float(rect.get("y", "-1")) <= 256
    assert ">2e19<" in svg
    assert f"{big:,} tokens" in svg


def test_series_past_the_palette_share_one_colour() -> None:
    """Past MAX_SERIES, the smallest series are drawn together as one legend item."""
    names = [f"m{n}" for n in range(MAX_SERIES + 3)]
    svg = render_usage_chart(_days(1, dict.fromkeys(names, 1)), names, "model")
    root = _parse(svg)
    legend = [
        g
        for g in root.iter(f"{SVG}g")
        if g.get("data-testid") == "usage-chart-legend-item"
    ]
    assert len(legend) == MAX_SERIES + 1
    assert OTHER in svg
    assert "3 tokens" in svg


def test_series_labels() -> None:
    """Empty names say what is missing; long names are cut to 40 characters."""
    assert series_label("", "model") == "(no model)"
    assert series_label("", "key") == "(no key)"
    assert len(series_label("x" * 500, "model")) == 40
