"""
Which changes of a price table keep the past as it was.

A billing record's cost is computed once, at the price in force when the
request finished, and an invoice lists the prices in force during its
month; both must read the same tomorrow as today. So a new table must keep
every price that has taken effect (the same model, moment and rates) and
may only add or change prices that take effect now or later, in the same
currency. `check_change` says whether a new table does; the first table of
a store is free.
"""

from __future__ import annotations

from datetime import datetime

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing._short import short
from zerfoo_cloud.pricing.model_price import ModelPrice
from zerfoo_cloud.pricing.table import PriceTable

__all__ = ["check_change"]


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _check_list(
    old: tuple[ModelPrice, ...],
    new: tuple[ModelPrice, ...],
    field: str,
    now: datetime,
) -> None:
    kept = [price for price in old if price.effective_from <= now]
    for price in kept:
        if price not in new:
            msg = (
                f"{field}: the price in force from {_iso(price.effective_from)} "
                "is missing or changed; prices that took effect are kept as they "
                "are (add a new price from now on instead)"
            )
            raise InvalidConfigError(msg, field=field)
    for price in new:
        if price.effective_from < now and price not in kept:
            msg = (
                f"{field}: a new price takes effect at {_iso(price.effective_from)}, "
                f"in the past; a new price takes effect from now ({_iso(now.replace(microsecond=0))}) on"
            )
            raise InvalidConfigError(msg, field=field)


def check_change(old: PriceTable | None, new: PriceTable, now: datetime) -> None:
    """
    Refuse *new* as the successor of *old* if it would change the past.

    Passes when *old* is ``None`` (the first table). Otherwise *new* must
    be in *old*'s currency, keep every price of *old* whose
    ``effective_from`` is at or before *now* (an aware datetime) exactly,
    for the same model (or the default), and every other price of *new*
    must take effect at *now* or later. Prices of *old* that have not yet
    taken effect may be changed or dropped.

    Raises:
        InvalidConfigError: the first rule broken; one line, ``field``
            names the currency, the model (``models['m']``) or
            ``default``.

    .. versionadded:: 0.1.0
    """
    if old is None:
        return
    if new.currency != old.currency:
        msg = (
            f"currency: the prices are in {old.currency}; a table in "
            f"{new.currency} would reprice past records (the currency never changes)"
        )
        raise InvalidConfigError(msg, field="currency")
    for model in sorted(set(old.models) | set(new.models)):
        _check_list(
            old.models.get(model, ()),
            new.models.get(model, ()),
            f"models[{short(model)}]",
            now,
        )
    _check_list(old.default, new.default, "default", now)
