"""
The console's number and time formatting for people.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerfoo_cloud.http.console import money, relative_time, thousands, utc_text
from zerfoo_cloud.pricing import UNPRICED, parse_micros

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (999, "999"),
        (1000, "1,000"),
        (1234567, "1,234,567"),
        (-1234, "-1,234"),
    ],
)
def test_thousands_separates_groups_of_three(value: int, text: str) -> None:
    """Commas go between every group of three digits."""
    assert thousands(value) == text


@pytest.mark.parametrize(
    ("micros", "currency", "text"),
    [
        (150_000, "USD", "0.15 USD"),
        (2_000_000, "EUR", "2 EUR"),
        (1_234_567_890_000, "USD", "1,234,567.89 USD"),
        (-1_000_000_000, "USD", "-1,000 USD"),
        (1, "USD", "0.000001 USD"),
        (5, "", UNPRICED),
    ],
)
def test_money_is_format_cost_with_separators(
    micros: int, currency: str, text: str
) -> None:
    """Money keeps every micro-unit and separates thousands."""
    assert money(micros, currency) == text


@given(st.integers(min_value=0, max_value=2**53))
def test_money_reads_back_to_the_same_micros(micros: int) -> None:
    """Without the separators, the amount parses back to the same integer."""
    number, _, code = money(micros, "USD").partition(" ")
    assert code == "USD"
    assert parse_micros(number.replace(",", ""), field="amount") == micros


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (0, "just now"),
        (9.9, "just now"),
        (10, "10 seconds ago"),
        (59, "59 seconds ago"),
        (60, "1 minute ago"),
        (180, "3 minutes ago"),
        (3599, "59 minutes ago"),
        (3600, "1 hour ago"),
        (86_399, "23 hours ago"),
        (86_400, "1 day ago"),
        (29 * 86_400, "29 days ago"),
        (30 * 86_400, "1 month ago"),
        (364 * 86_400, "12 months ago"),
        (365 * 86_400, "1 year ago"),
        (800 * 86_400, "2 years ago"),
        (-120, "in 2 minutes"),
        (-2 * 86_400, "in 2 days"),
    ],
)
def test_relative_time_counts_in_the_largest_whole_unit(
    delta: float, text: str
) -> None:
    """Each unit starts at its limit and ends just before the next one."""
    assert relative_time(NOW - delta, NOW) == text


def test_utc_text_is_exact() -> None:
    """The exact time is UTC, to the second."""
    assert utc_text(NOW) == "2023-11-14 22:13:20 UTC"


@given(st.floats(min_value=0, max_value=4e9), st.floats(min_value=0, max_value=4e9))
def test_relative_time_says_ago_only_for_the_past(ts: float, now: float) -> None:
    """Past times end in "ago", future ones start with "in"."""
    text = relative_time(ts, now)
    if abs(now - ts) < 10:
        assert text == "just now"
    elif ts < now:
        assert text.endswith(" ago")
    else:
        assert text.startswith("in ")
