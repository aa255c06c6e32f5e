"""
`check_change` and `PriceBook`: a new price table keeps every price that
took effect, adds prices only from now on, and never changes currency; a
refused change stores nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pricing._support import refused
from tests.pricing.test_pricing_properties import tables
from zerfoo_cloud.errors import PricesReadOnlyError, PriceTableChangedError
from zerfoo_cloud.price_book import ADD_ATTEMPTS, PriceBook
from zerfoo_cloud.pricing import (
    NO_PRICES,
    ModelPrice,
    PriceTable,
    StoredPrices,
    check_change,
)
from zerfoo_cloud.stores.memory import MemoryPriceStore

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
PAST = NOW - timedelta(days=30)
FUTURE = NOW + timedelta(days=30)


def price(when: datetime, rate: int = 100_000) -> ModelPrice:
    """A price from *when* whose three rates are *rate*."""
    return ModelPrice(when, rate, rate, rate)


OLD = PriceTable(
    "USD",
    {"m": [price(PAST), price(FUTURE, 300_000)]},
    [price(PAST, 900_000)],
)


def test_the_first_table_is_free() -> None:
    """Any table may be the first, whatever its dates."""
    check_change(None, PriceTable("EUR", {"m": [price(PAST)]}), NOW)


def test_adding_prices_from_now_or_later_passes() -> None:
    """A price from exactly now, or later, of a known or a new model passes."""
    new = OLD.with_price("m", price(NOW, 200_000)).with_price("n", price(FUTURE))
    check_change(OLD, new, NOW)


def test_a_price_in_force_kept_exactly_passes_and_a_future_one_may_go() -> None:
    """Prices not yet in force may be dropped or changed."""
    new = PriceTable("USD", {"m": [price(PAST)]}, [price(PAST, 900_000)])
    check_change(OLD, new, NOW)
    check_change(OLD, new.with_price("m", price(FUTURE, 5)), NOW)


@pytest.mark.parametrize(
    ("new", "says", "field"),
    [
        (
            PriceTable("EUR", {"m": [price(PAST)]}, [price(PAST, 900_000)]),
            "currency never changes",
            "currency",
        ),
        (
            PriceTable("USD", {"m": [price(PAST, 100_001)]}, [price(PAST, 900_000)]),
            "missing or changed",
            "models['m']",
        ),
        (
            PriceTable("USD", {}, [price(PAST, 900_000)]),
            "missing or changed",
            "models['m']",
        ),
        (
            PriceTable("USD", {"m": [price(PAST)]}),
            "missing or changed",
            "default",
        ),
        (
            OLD.with_price("m", price(NOW - timedelta(microseconds=1))),
            "in the past",
            "models['m']",
        ),
        (OLD.with_price("new", price(PAST)), "in the past", "models['new']"),
    ],
)
def test_changing_the_past_is_refused(new: PriceTable, says: str, field: str) -> None:
    """A currency change, a price in force changed or dropped, a new price one microsecond in the past: one line naming the place."""
    refused(lambda: check_change(OLD, new, NOW), says, field)


@settings(max_examples=60, deadline=None)
@given(tables, st.integers(min_value=0, max_value=10**9))
def test_a_table_is_always_its_own_successor_and_additions_from_now_pass(
    table: PriceTable, offset: int
) -> None:
    """Property: the same table passes at any moment; so does it plus a price from that moment."""
    now = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=offset)
    check_change(table, table, now)
    try:
        grown = table.with_price("added-model", price(now))
    except ValueError:  # the model has a price from that exact moment
        return
    check_change(table, grown, now)


@settings(max_examples=60, deadline=None)
@given(tables, st.integers(min_value=0, max_value=10**9))
def test_dropping_any_price_in_force_is_refused(table: PriceTable, offset: int) -> None:
    """Property: removing a model's whole timeline is refused exactly when one of its prices took effect."""
    now = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=offset)
    for model, timeline in table.models.items():
        rest = {name: list(ps) for name, ps in table.models.items() if name != model}
        new = PriceTable(table.currency, rest, table.default or None)
        if any(p.effective_from <= now for p in timeline):
            with pytest.raises(ValueError, match="missing or changed"):
                check_change(table, new, now)
        else:
            check_change(table, new, now)


# -- PriceBook ----------------------------------------------------------------


def book(**kwargs: object) -> PriceBook:
    """A price book on a fresh memory store whose clock reads NOW."""
    return PriceBook(MemoryPriceStore(), clock=NOW.timestamp, **kwargs)  # type: ignore[arg-type]


def test_replace_checks_the_version_then_the_past() -> None:
    """A stale version is refused before the table is looked at; a refused change stores nothing."""
    prices = book()
    assert prices.current() == NO_PRICES
    assert prices.replace(OLD, 0) == StoredPrices(OLD, 1)
    with pytest.raises(PriceTableChangedError):
        prices.replace(OLD, 0)
    refused(lambda: prices.replace(PriceTable("EUR"), 1), "currency", "currency")
    assert prices.current() == StoredPrices(OLD, 1)


def test_add_from_now_uses_the_clock_of_the_change() -> None:
    """from_now: the price takes effect at the book's clock reading, whatever it said."""
    prices = book()
    prices.replace(OLD, 0)
    stored = prices.add("n", price(PAST), from_now=True)
    assert stored.version == 2
    assert stored.table is not None
    assert stored.table.models["n"] == (price(NOW),)


def test_add_needs_a_table_first() -> None:
    """Without a stored table (no currency yet), adding a price is refused."""
    refused(lambda: book().add("m", price(FUTURE)), "no price table yet", "prices")


def test_add_retries_when_another_change_wins() -> None:
    """A concurrent change between read and write is read again; ADD_ATTEMPTS losses raise."""
    store = MemoryPriceStore()
    store.replace(OLD, 0)

    class Racing(MemoryPriceStore):
        losses = 0

        def read(self) -> StoredPrices:
            return store.read()

        def version(self) -> int:
            return store.version()

        def replace(self, table: PriceTable, expected_version: int) -> int:
            if self.losses < limit:
                self.losses += 1
                store.replace(store.read().table or OLD, store.version())
            return store.replace(table, expected_version)

    limit = ADD_ATTEMPTS - 1
    stored = PriceBook(Racing(), clock=NOW.timestamp).add("n", price(FUTURE))
    assert stored.version == 1 + ADD_ATTEMPTS
    limit = 10 * ADD_ATTEMPTS
    with pytest.raises(PriceTableChangedError):
        PriceBook(Racing(), clock=NOW.timestamp).add("o", price(FUTURE))


def test_a_fixed_table_is_read_only() -> None:
    """With a price file's table, current answers it at version 0 and changes are refused."""
    prices = book(fixed=OLD)
    assert prices.read_only
    assert prices.current() == StoredPrices(OLD, 0)
    with pytest.raises(PricesReadOnlyError):
        prices.replace(OLD, 0)
    with pytest.raises(PricesReadOnlyError):
        prices.add("m", price(FUTURE))
    assert prices.store.read() == NO_PRICES
