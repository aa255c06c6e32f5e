"""
`PriceReloader`: a table stored by one host reaches every other host's
meter and policy, off the event loop, and a failing store keeps the table
in force.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pytest

from zerfoo_cloud import InvalidConfigError, TokenMeter
from zerfoo_cloud.errors import StoreUnavailableError
from zerfoo_cloud.price_reloader import PriceReloader
from zerfoo_cloud.pricing import ModelPrice, PriceTable, StoredPrices
from zerfoo_cloud.stores.memory import MemoryBillingStore, MemoryPriceStore

if TYPE_CHECKING:
    from zerfoo_cloud.stores.lmdb import LMDBStores

START = datetime(2020, 1, 1, tzinfo=timezone.utc)


def table(rate: int) -> PriceTable:
    """A one-model table at *rate*."""
    return PriceTable("USD", {"m": [ModelPrice(START, rate, rate, rate)]})


class Holder:
    """An object with a ``prices`` attribute, as the policy has."""

    prices: PriceTable | None = None


def test_check_assigns_each_new_version_once(lmdb_stores: LMDBStores) -> None:
    """No table: nothing; a new version: every target gets it; the same version again: nothing."""
    meter, policy = TokenMeter(MemoryBillingStore()), Holder()
    reloader = PriceReloader(lmdb_stores.prices, [meter, policy])
    assert not reloader.check()
    assert meter.prices is None
    lmdb_stores.prices.replace(table(1), 0)
    assert reloader.check()
    assert meter.prices == policy.prices == table(1)
    assert reloader.version == 1
    assert not reloader.check()
    lmdb_stores.prices.replace(table(2), 1)
    assert reloader.check()
    assert meter.prices == policy.prices == table(2)
    meter.close()


@pytest.mark.postgres
def test_a_table_stored_by_one_host_reaches_another_within_seconds(
    postgres_url: str,
) -> None:
    """Two hosts on one PostgreSQL database: a change on the first is in force on the second's meter, from the reloader's own thread."""
    from zerfoo_cloud.stores.postgres import PostgresStores

    with (
        PostgresStores.open(postgres_url, max_size=2) as first,
        PostgresStores.open(postgres_url, max_size=2) as second,
    ):
        meter = TokenMeter(MemoryBillingStore())
        reloader = PriceReloader(second.prices, [meter], interval=0.05)
        reloader.start()
        try:
            first.prices.replace(table(7), 0)
            deadline = time.monotonic() + 10
            while meter.prices is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert meter.prices == table(7)
        finally:
            reloader.close()
            meter.close()


class _Failing(MemoryPriceStore):
    """A price store whose backend cannot be reached while *down* is set."""

    down = False

    def version(self) -> int:
        if self.down:
            raise StoreUnavailableError("postgresql", "cannot reach the database")
        return super().version()

    def read(self) -> StoredPrices:
        if self.down:
            raise StoreUnavailableError("postgresql", "cannot reach the database")
        return super().read()


def test_a_failing_store_keeps_the_table_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While the store fails, the table in force stays and one warning is logged; it recovers by itself."""
    store = _Failing()
    store.replace(table(1), 0)
    holder = Holder()
    reloader = PriceReloader(store, [holder], interval=0.01)
    reloader.check()
    store.down = True
    store.replace(table(2), 1)
    with caplog.at_level(logging.WARNING, logger="zerfoo_cloud.prices"):
        reloader.start()
        time.sleep(0.2)
        assert holder.prices == table(1)
        store.down = False
        deadline = time.monotonic() + 10
        while holder.prices != table(2) and time.monotonic() < deadline:
            time.sleep(0.01)
        reloader.close()
    assert holder.prices == table(2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "cannot reach the database" in warnings[0].getMessage()


@pytest.mark.parametrize("interval", [0, -1, float("nan")])
def test_interval_must_be_positive(interval: float) -> None:
    """An interval of 0, less, or NaN is refused."""
    with pytest.raises(InvalidConfigError, match="interval"):
        PriceReloader(MemoryPriceStore(), [], interval=interval)
