"""
Properties of costs and tables, checked by Hypothesis: costs grow with
tokens, round up once per request, and add up; the price in force is the
latest one; tables round-trip; an invoice is the sum of its records.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from zerfoo_cloud.pricing import (
    MAX_PRICE_MICROS,
    ModelPrice,
    Money,
    PriceTable,
    UnpricedModelError,
    format_micros,
)

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
tokens = st.integers(min_value=0, max_value=10**12)
rates = st.integers(min_value=0, max_value=MAX_PRICE_MICROS)
moments = st.integers(min_value=0, max_value=10**9).map(
    lambda s: EPOCH + timedelta(seconds=s, microseconds=s % 7)
)
prices = st.builds(ModelPrice, moments, rates, rates, rates)
models = st.text(min_size=1, max_size=12).filter(
    lambda m: m.encode("utf-8", "ignore") == m.encode("utf-8", "surrogatepass")
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[int, int, int]:
    inp = draw(tokens)
    return inp, draw(tokens), draw(st.integers(min_value=0, max_value=inp))


@st.composite
def timelines(draw: st.DrawFn) -> list[ModelPrice]:
    found = draw(st.lists(prices, min_size=1, max_size=6))
    unique = {price.effective_from: price for price in found}
    return list(unique.values())


tables = st.builds(
    PriceTable,
    st.sampled_from(["USD", "EUR", "JPY"]),
    st.dictionaries(models, timelines(), max_size=4),
    st.none() | timelines(),
)


def _exact(price: ModelPrice, inp: int, out: int, cached: int) -> Fraction:
    return Fraction(
        (inp - cached) * price.input + cached * price.cached_input + out * price.output,
        10**6,
    )


@given(prices, requests())
def test_a_cost_is_the_exact_cost_rounded_up(
    price: ModelPrice, request: tuple[int, int, int]
) -> None:
    cost = price.cost(*request)
    assert type(cost) is int
    assert cost - 1 < _exact(price, *request) <= cost


@given(prices, requests(), tokens, tokens, tokens)
def test_a_cost_never_falls_when_tokens_are_added(
    price: ModelPrice,
    request: tuple[int, int, int],
    more_in: int,
    more_out: int,
    more_cached: int,
) -> None:
    inp, out, cached = request
    cost = price.cost(inp, out, cached)
    assert price.cost(inp + more_in, out, cached) >= cost
    assert price.cost(inp, out + more_out, cached) >= cost
    # Caching more of the same prompt moves tokens between two rates.
    extra = min(more_cached, inp - cached)
    cheaper = price.cached_input <= price.input
    moved = price.cost(inp, out, cached + extra)
    assert (moved <= cost) if cheaper else (moved >= cost)


@given(prices, requests(), requests())
def test_costs_add_within_one_micro_unit(
    price: ModelPrice, a: tuple[int, int, int], b: tuple[int, int, int]
) -> None:
    together = price.cost(*(x + y for x, y in zip(a, b, strict=True)))
    apart = price.cost(*a) + price.cost(*b)
    assert together <= apart <= together + 1


@given(models, timelines(), moments)
def test_the_price_in_force_is_the_latest_at_or_before_the_moment(
    model: str, timeline: list[ModelPrice], when: datetime
) -> None:
    table = PriceTable("USD", {model: timeline})
    started = [p for p in timeline if p.effective_from <= when]
    if not started:
        try:
            table.price_at(model, when)
        except UnpricedModelError:
            return
        raise AssertionError("a price before the first one")
    expected = max(started, key=lambda p: p.effective_from)
    assert table.price_at(model, when) == expected


@given(tables)
def test_tables_round_trip_through_mappings_and_json(table: PriceTable) -> None:
    data = table.to_mapping()
    assert PriceTable.from_mapping(data) == table
    assert PriceTable.from_mapping(json.loads(json.dumps(data))) == table


@settings(max_examples=20)
@given(tables)
def test_tables_round_trip_through_a_json_file(table: PriceTable) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "prices.json"
        path.write_text(json.dumps(table.to_mapping()), encoding="utf-8")
        assert PriceTable.from_file(path) == table


@given(
    timelines(),
    rates,
    st.lists(st.tuples(requests(), moments), max_size=40),
)
def test_an_invoice_is_the_sum_of_its_stored_costs(
    timeline: list[ModelPrice],
    rate: int,
    made: list[tuple[tuple[int, int, int], datetime]],
) -> None:
    # Each record's cost is computed once, when it is made, at the price of
    # its moment (a price change in the middle of the period included); the
    # invoice adds the stored integers, so it equals their sum to the
    # micro-unit, and is within one micro-unit a request of the exact total.
    # Before the model's first price, a default prices it.
    table = PriceTable("USD", {"m": timeline}, [ModelPrice(EPOCH, rate, rate, rate)])
    stored = [table.cost_of("m", *request, when=when) for request, when in made]
    invoice = Money.total((Money(cost, "USD") for cost in stored), "USD")
    assert invoice.micros == sum(stored)
    exact = sum(
        (_exact(table.price_at("m", when), *request) for request, when in made),
        Fraction(0),
    )
    assert exact <= invoice.micros < exact + len(made) + (0 if made else 1)
    assert invoice.amount == format_micros(sum(stored))
