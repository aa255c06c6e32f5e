"""
One model's price and the cost of one request: exact integers, rounded up
once per request to the micro-unit.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from fractions import Fraction

import pytest

from tests.pricing._support import refused
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.metering import MAX_TOKENS
from zerfoo_cloud.pricing import MAX_PRICE_MICROS, ModelPrice, parse_instant

JAN = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _price(
    inp: str = "0.15", out: str = "0.6", cached: str | None = "0.075"
) -> ModelPrice:
    data = {"effective_from": "2026-01-01T00:00:00Z", "input": inp, "output": out}
    if cached is not None:
        data["cached_input"] = cached
    return ModelPrice.from_mapping(data)


def test_the_worked_example_of_the_docs() -> None:
    # docs/billing.md: 1,000 prompt tokens (200 of them cached) and 500
    # completion tokens at 0.15 / 0.075 / 0.60 per million:
    # 800 * 150,000 + 200 * 75,000 + 500 * 600,000 = 435,000,000, divided by
    # a million is 435 micro-units exactly.
    price = _price()
    assert (price.input, price.cached_input, price.output) == (150_000, 75_000, 600_000)
    assert price.cost(1000, 500, 200) == 435
    # One more prompt token adds 0.15 micro-units: rounded up to 436.
    assert price.cost(1001, 500, 200) == 436


def test_cost_rounds_up_once_per_request() -> None:
    price = _price()
    assert price.cost(0, 0) == 0
    assert price.cost(1, 0) == 1  # 0.15 micro-units is charged as 1
    assert price.cost(6, 0) == 1  # 0.9
    assert price.cost(7, 0) == 2  # 1.05
    assert price.cost(20, 0) == 3  # exactly 3
    assert price.cost(0, 5) == 3  # exactly 3.0


def test_cost_equals_the_exact_rational_rounded_up() -> None:
    price = _price("3.141593", "12.5", "0.000001")
    for inp, out, cached in [(1, 1, 0), (999_999, 3, 17), (10**9, 10**9, 10**8)]:
        exact = Fraction(
            (inp - cached) * 3_141_593 + cached * 1 + out * 12_500_000, 10**6
        )
        cost = price.cost(inp, out, cached)
        assert cost - 1 < exact <= cost


def test_without_a_cached_rate_cached_tokens_cost_the_input_rate() -> None:
    price = _price(cached=None)
    assert price.cached_input == price.input
    assert price.cost(1000, 0, 1000) == price.cost(1000, 0, 0)


def test_token_counts_at_the_limit_and_past_it() -> None:
    price = ModelPrice(JAN, MAX_PRICE_MICROS, MAX_PRICE_MICROS, MAX_PRICE_MICROS)
    # The largest cost there is: still an exact int (past 64 bits).
    assert price.cost(MAX_TOKENS, MAX_TOKENS, MAX_TOKENS) == 2 * MAX_TOKENS * 10**6
    for args, field in [
        ((MAX_TOKENS + 1, 0, 0), "input_tokens"),
        ((0, MAX_TOKENS + 1, 0), "output_tokens"),
        ((-1, 0, 0), "input_tokens"),
        ((0, -1, 0), "output_tokens"),
        ((5, 0, -1), "cached_input_tokens"),
        ((5, 0, 6), "cached_input_tokens"),
        ((1.0, 0, 0), "input_tokens"),
        ((True, 0, 0), "input_tokens"),
    ]:
        with pytest.raises(InvalidConfigError) as caught:
            price.cost(*args)  # type: ignore[arg-type]
        assert caught.value.field == field


def test_rates_at_the_cap_and_one_micro_unit_past_it() -> None:
    assert _price("1000000", "1000000", "1000000").input == MAX_PRICE_MICROS
    for field in ("input", "output", "cached_input"):
        data = {
            "effective_from": JAN,
            "input": "1",
            "output": "1",
            field: "1000000.000001",
        }
        with pytest.raises(InvalidConfigError, match="at most 1000000") as caught:
            ModelPrice.from_mapping(data)
        assert caught.value.field == f"price.{field}"
        with pytest.raises(InvalidConfigError):
            ModelPrice(
                JAN,
                **{
                    "input": 1,
                    "output": 1,
                    "cached_input": 1,
                    field: MAX_PRICE_MICROS + 1,
                },
            )


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ({"input": "1", "output": "1"}, "price.effective_from", "missing"),
        ({"effective_from": JAN, "output": "1"}, "price.input", "missing"),
        ({"effective_from": JAN, "input": "1"}, "price.output", "missing"),
        (
            {"effective_from": JAN, "input": "1", "output": "1", "cache": "1"},
            "price.cache",
            "unknown key",
        ),
        (
            {"effective_from": JAN, "input": "-1", "output": "1"},
            "price.input",
            "negative",
        ),
        ({"effective_from": JAN, "input": 0.1, "output": "1"}, "price.input", "float"),
        (
            {"effective_from": "2026-01-01", "input": "1", "output": "1"},
            "price.effective_from",
            "UTC offset",
        ),
        (
            {"effective_from": datetime(2026, 1, 1), "input": "1", "output": "1"},  # noqa: DTZ001 - the point of the test
            "price.effective_from",
            "UTC offset",
        ),
        (
            {"effective_from": "tomorrow", "input": "1", "output": "1"},
            "price.effective_from",
            "ISO 8601",
        ),
        (
            {"effective_from": 1767225600, "input": "1", "output": "1"},
            "price.effective_from",
            "ISO 8601",
        ),
        ("0.15", "price", "a price is a table"),
    ],
)
def test_bad_prices_are_refused_naming_the_field(
    data: object, field: str, says: str
) -> None:
    refused(lambda: ModelPrice.from_mapping(data), says, field)


def test_dates_are_kept_in_utc_and_must_be_aware() -> None:
    plus_two = datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert ModelPrice(plus_two, 1, 1, 1).effective_from == JAN
    assert ModelPrice(plus_two, 1, 1, 1).effective_from.tzinfo is timezone.utc
    assert parse_instant("2026-01-01T01:00:00+01:00", field="f") == JAN
    assert parse_instant("2026-01-01T00:00:00Z", field="f") == JAN
    for bad in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        with pytest.raises(InvalidConfigError, match="between the years 1 and 9999"):
            parse_instant(bad, field="f")
    with pytest.raises(InvalidConfigError, match="ISO 8601"):
        parse_instant("2026-01-01T00:00:00Z" + " " * 60, field="f")


def test_a_price_round_trips_through_its_mapping() -> None:
    price = _price("0.15", "0.6", "0.075")
    assert price.to_mapping() == {
        "effective_from": "2026-01-01T00:00:00Z",
        "input": "0.15",
        "output": "0.6",
        "cached_input": "0.075",
    }
    assert ModelPrice.from_mapping(price.to_mapping()) == price
    odd = ModelPrice(JAN + timedelta(microseconds=1), 1, 0, 10**12)
    assert ModelPrice.from_mapping(odd.to_mapping()) == odd
