"""
`PriceBook`: the price table of a service, changed only in ways that keep
the past.

Every change goes through three checks before it is stored: the table is
not fixed by a price file (`zerfoo_cloud.errors.PricesReadOnlyError`), it
is based on the stored version (`zerfoo_cloud.errors.PriceTableChangedError`
otherwise: someone changed prices since it was read), and it keeps every
price that took effect (`zerfoo_cloud.pricing.check_change`). The table
itself lives in a `zerfoo_cloud.stores.protocols.PriceStore` shared by
every host; `zerfoo_cloud.price_reloader.PriceReloader` brings each host's
copy up to date.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud.errors import (
    InvalidConfigError,
    PricesReadOnlyError,
    PriceTableChangedError,
)
from zerfoo_cloud.pricing import StoredPrices, check_change

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.pricing import ModelPrice, PriceTable
    from zerfoo_cloud.stores.protocols import PriceStore

__all__ = ["ADD_ATTEMPTS", "PriceBook"]

#: How many times `PriceBook.add` reads again when another change won.
ADD_ATTEMPTS = 5


class PriceBook:
    """
    The price table of a service, read from *store* and changed only
    through checks; or, with *fixed*, the table of a price file, which
    cannot be changed here.

    Args:
        store: where the table lives (`zerfoo_cloud.stores.Stores.prices`).
        fixed: the table of ``serve --prices FILE``: `current` answers it
            at version 0 and every change raises `PricesReadOnlyError`.
        clock: Unix seconds; "now" of `zerfoo_cloud.pricing.check_change`.

    Calls wait on the store: call them from a worker thread, never on an
    event loop.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: PriceStore,
        *,
        fixed: PriceTable | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.fixed = fixed
        self.clock = clock

    @property
    def read_only(self) -> bool:
        """Whether the table comes from a price file (no change allowed)."""
        return self.fixed is not None

    def current(self) -> StoredPrices:
        """
        Return the table in force and its version (the file's table at
        version 0 when *fixed*).

        Raises:
            StoreError: the store cannot be read.
        """
        if self.fixed is not None:
            return StoredPrices(self.fixed, 0)
        return self.store.read()

    def _check_writable(self) -> None:
        if self.fixed is not None:
            msg = (
                "prices come from the price file given to 'serve --prices'; "
                "change that file, or serve without it to manage prices here"
            )
            raise PricesReadOnlyError(msg)

    def replace(
        self, table: PriceTable, expected_version: int, *, now: datetime | None = None
    ) -> StoredPrices:
        """
        Make *table* the table in force, if the stored one is still at
        *expected_version* and *table* keeps every price that took effect;
        return it with its new version.

        Raises:
            PricesReadOnlyError: the table is *fixed*.
            PriceTableChangedError: the stored version is not
                *expected_version*; nothing changed.
            InvalidConfigError: *table* would change the past (see
                `zerfoo_cloud.pricing.check_change`, whose "now" is *now*,
                default *clock*'s reading); nothing changed.
            StoreError: the store failed.
        """
        self._check_writable()
        stored = self.store.read()
        if stored.version != expected_version:
            raise PriceTableChangedError(expected_version, stored.version)
        if now is None:
            now = datetime.fromtimestamp(self.clock(), timezone.utc)
        check_change(stored.table, table, now)
        version = self.store.replace(table, expected_version)
        return StoredPrices(table, version)

    def add(
        self, model: str, price: ModelPrice, *, from_now: bool = False
    ) -> StoredPrices:
        """
        Add *price* to *model*'s prices (a price change from
        ``price.effective_from`` on, which must be now or later) in the
        stored table, whatever its version: when another change wins in
        between, it reads again, up to `ADD_ATTEMPTS` times. With
        *from_now*, the price takes effect at the moment of the change
        (*clock*'s reading then), whatever ``price.effective_from`` says.

        Raises:
            PricesReadOnlyError: the table is *fixed*.
            InvalidConfigError: no table is stored yet (its currency is
                unknown: store a whole table first), *model* already has a
                price from that moment, or the price is in the past.
            PriceTableChangedError: other changes won every attempt.
            StoreError: the store failed.
        """
        self._check_writable()
        for attempt in range(ADD_ATTEMPTS):
            stored = self.store.read()
            if stored.table is None:
                msg = (
                    "no price table yet: set a whole table first (it names the "
                    "currency), then add prices to it"
                )
                raise InvalidConfigError(msg, field="prices")
            if from_now:
                when = datetime.fromtimestamp(self.clock(), timezone.utc)
                price = attrs.evolve(price, effective_from=when)
            try:
                return self.replace(
                    stored.table.with_price(model, price),
                    stored.version,
                    now=price.effective_from if from_now else None,
                )
            except PriceTableChangedError:
                if attempt == ADD_ATTEMPTS - 1:
                    raise
        raise AssertionError  # pragma: no cover - the loop returns or raises
