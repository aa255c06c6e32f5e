"""
Amounts as integers of micro-units: read exactly from decimal text,
written back in the same form, never through a float.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing import (
    CURRENCIES,
    MICROS_PER_UNIT,
    Money,
    NumberText,
    check_currency,
    format_micros,
    parse_micros,
)


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        ("0.15", 150_000),
        ("0", 0),
        ("12", 12_000_000),
        ("0.000001", 1),
        ("1.5", 1_500_000),
        ("0.1500000", 150_000),  # trailing zeros past six places are no precision
        ("007.25", 7_250_000),
        (NumberText("0.6"), 600_000),
        (Decimal("0.075"), 75_000),
        (Decimal("1E+2"), 100_000_000),
        (Decimal("0.15000000000"), 150_000),
        (Decimal("-0"), 0),
        (Decimal("0E-30"), 0),
        (3, 3_000_000),
    ],
)
def test_amounts_are_read_exactly(value: object, micros: int) -> None:
    assert parse_micros(value, field="f") == micros


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("-0.15", "must not be negative"),
        (Decimal("-0.15"), "must not be negative"),
        (-1, "must not be negative"),
        ("0.0000001", "at most 6 decimal places"),
        (Decimal("0.0000001"), "at most 6 decimal places"),
        (Decimal("1e-999999"), "at most 6 decimal places"),
        ("2.5e-1", "plain decimal"),
        ("1e999999", "plain decimal"),
        ("NaN", "plain decimal"),
        ("Infinity", "plain decimal"),
        (Decimal("NaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        (Decimal("1e999999"), "at most 40 digits"),
        ("+1", "plain decimal"),
        (" 1", "plain decimal"),
        ("1_000", "plain decimal"),
        ("1.", "plain decimal"),
        (".5", "plain decimal"),
        ("", "plain decimal"),
        ("١٢", "plain decimal"),  # Arabic-Indic digits: str.isdigit, not ASCII
        ("1" * 41, "at most 40 characters"),
        (0.15, "a float is inexact"),
        (float("nan"), "a float is inexact"),
        (True, "not a bool"),
        (None, "not a NoneType"),
        ([1], "not a list"),
    ],
)
def test_anything_else_is_refused_in_one_line(value: object, says: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        parse_micros(value, field="models['m'][0].input")
    message = str(caught.value)
    assert says in message
    assert message.startswith("models['m'][0].input: ")
    assert "\n" not in message
    assert len(message) < 200
    assert caught.value.field == "models['m'][0].input"


def test_the_longest_text_is_read_and_one_more_character_is_not() -> None:
    assert parse_micros("0" * 39 + "1", field="f") == MICROS_PER_UNIT
    with pytest.raises(InvalidConfigError, match="at most 40 characters"):
        parse_micros("0" * 40 + "1", field="f")


def test_a_maximum_is_allowed_and_one_micro_unit_more_is_not() -> None:
    assert parse_micros("10", field="f", maximum=10_000_000) == 10_000_000
    assert parse_micros(10, field="f", maximum=10_000_000) == 10_000_000
    for over in ("10.000001", Decimal("10.000001"), 11, 10**5000):
        with pytest.raises(InvalidConfigError, match="at most 10"):
            parse_micros(over, field="f", maximum=10_000_000)


def test_a_huge_integer_is_refused_without_printing_it() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        parse_micros(10**5000, field="f", maximum=1)
    assert str(caught.value).endswith("not an integer too long to print")


def test_decimals_are_read_the_same_in_any_decimal_context() -> None:
    # A context of 3 digits would round 1.000001 to 1.00 in arithmetic;
    # the amount is read from its digits, not computed.
    with decimal.localcontext(decimal.Context(prec=3)):
        assert parse_micros(Decimal("1.000001"), field="f") == 1_000_001
        assert parse_micros("123456.000001", field="f") == 123_456_000_001


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (150_000, "0.15"),
        (2_000_000, "2"),
        (1, "0.000001"),
        (0, "0"),
        (-1, "-0.000001"),
        (-2_500_000, "-2.5"),
        (10**30, "1" + "0" * 24),
    ],
)
def test_amounts_are_written_as_the_shortest_decimal(micros: int, text: str) -> None:
    assert format_micros(micros) == text


@given(st.integers(min_value=0, max_value=10**30))
def test_writing_then_reading_gives_the_same_amount(micros: int) -> None:
    assert parse_micros(format_micros(micros), field="f") == micros
    assert parse_micros(Decimal(format_micros(micros)), field="f") == micros


@given(
    st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False),
)
def test_a_decimal_and_its_text_read_the_same(value: Decimal) -> None:
    assert parse_micros(value, field="f") == int(value * MICROS_PER_UNIT)


def test_currencies_are_iso_codes_in_capitals() -> None:
    assert {"USD", "EUR", "JPY", "GBP", "CHF", "INR", "BRL"} <= CURRENCIES
    assert all(len(code) == 3 and code.isupper() for code in CURRENCIES)
    assert 150 <= len(CURRENCIES) < 200
    assert check_currency("EUR") == "EUR"
    for withdrawn in ("HRK", "DEM", "FRF", "XXX", "XTS", "XAU"):
        with pytest.raises(InvalidConfigError, match="unknown currency"):
            check_currency(withdrawn)
    with pytest.raises(InvalidConfigError, match="in capitals: 'USD'"):
        check_currency("usd")
    with pytest.raises(InvalidConfigError, match="unknown currency") as caught:
        check_currency("X" * 10_000)
    assert len(str(caught.value)) < 200
    with pytest.raises(InvalidConfigError, match="unknown currency"):
        check_currency(840)


def test_money_adds_only_in_one_currency() -> None:
    a = Money.parse("0.15", "USD")
    b = Money(1, "USD")
    assert a + b == Money(150_001, "USD")
    assert str(a + b) == "0.150001 USD"
    assert (a + b).amount == "0.150001"
    assert Money.total([a, b, b], "USD") == Money(150_002, "USD")
    assert Money.total([], "EUR") == Money(0, "EUR")
    with pytest.raises(InvalidConfigError, match="cannot add EUR to USD"):
        _ = a + Money(1, "EUR")
    with pytest.raises(InvalidConfigError, match="cannot add EUR to USD"):
        Money.total([a, Money(1, "EUR")], "USD")
    with pytest.raises(TypeError):
        _ = a + 1
    with pytest.raises(InvalidConfigError, match="micros"):
        Money(0.15, "USD")  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match="unknown currency"):
        Money(1, "usd")
