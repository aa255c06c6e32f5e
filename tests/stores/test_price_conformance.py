"""
The `PriceStore` contract, run against every implementation.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from zerfoo_cloud.errors import PriceTableChangedError
from zerfoo_cloud.pricing import NO_PRICES, ModelPrice, PriceTable, StoredPrices
from zerfoo_cloud.stores.protocols import PriceStore

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def table(output: int = 600_000, currency: str = "USD") -> PriceTable:
    """A one-model table whose output rate is *output*."""
    return PriceTable(
        currency,
        {"gpt-x": [ModelPrice(START, 150_000, output, 75_000)]},
        [ModelPrice(START, 1_000_000, 2_000_000, 1_000_000)],
    )


def test_is_a_price_store(price_store: PriceStore) -> None:
    """Every implementation satisfies the runtime-checkable protocol."""
    assert isinstance(price_store, PriceStore)


def test_empty_store_has_no_table_at_version_zero(price_store: PriceStore) -> None:
    """Before the first table: no table, version 0."""
    assert price_store.read() == NO_PRICES
    assert price_store.version() == 0


def test_replace_stores_the_table_and_counts_versions(
    price_store: PriceStore,
) -> None:
    """Each change adds one to the version; the table reads back equal."""
    assert price_store.replace(table(), 0) == 1
    assert price_store.read() == StoredPrices(table(), 1)
    assert price_store.replace(table(700_000), 1) == 2
    assert price_store.read() == StoredPrices(table(700_000), 2)
    assert price_store.version() == 2


@pytest.mark.parametrize("expected", [0, 2, 5])
def test_a_stale_version_is_refused_and_nothing_changes(
    price_store: PriceStore, expected: int
) -> None:
    """A change based on a version other than the stored one is refused and writes nothing."""
    price_store.replace(table(), 0)
    with pytest.raises(PriceTableChangedError) as caught:
        price_store.replace(table(900_000), expected)
    assert (caught.value.expected, caught.value.found) == (expected, 1)
    assert price_store.read() == StoredPrices(table(), 1)


def test_a_first_table_cannot_be_based_on_a_later_version(
    price_store: PriceStore,
) -> None:
    """On an empty store, only version 0 may be the base of a change."""
    with pytest.raises(PriceTableChangedError) as caught:
        price_store.replace(table(), 1)
    assert caught.value.found == 0
    assert price_store.read() == NO_PRICES


def test_concurrent_changes_from_one_version_let_exactly_one_win(
    price_store: PriceStore,
) -> None:
    """Eight writers based on the same version: one succeeds, seven are refused."""
    price_store.replace(table(), 0)
    won: list[int] = []
    refused: list[int] = []
    barrier = threading.Barrier(8)

    def change(index: int) -> None:
        barrier.wait()
        try:
            price_store.replace(table(100_000 + index), 1)
            won.append(index)
        except PriceTableChangedError:
            refused.append(index)

    threads = [threading.Thread(target=change, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert len(refused) == 7
    assert price_store.read() == StoredPrices(table(100_000 + won[0]), 2)


def test_close_twice_is_harmless(price_store: PriceStore) -> None:
    """Closing a store twice does not raise."""
    price_store.close()
    price_store.close()
