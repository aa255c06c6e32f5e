"""
Spend budget records: how much money a tenant, or one of its keys, may spend
in a calendar period.

A `SpendBudget` is an amount of money (an `int` of micro-units in one
ISO 4217 currency) per period: a calendar day, an ISO week (from Monday), a
calendar month, each in an IANA time zone, or the whole lifetime of the
tenant or key. ``alert_at`` lists the percents of the amount at which a
`zerfoo_cloud.budgets.BudgetEvent` is sent. Records sit below the tenant and
key records, which import them, and touch no store.

Every `SpendBudget` is valid: the constructor and `SpendBudget.from_dict`
refuse bad input with a one-line `InvalidConfigError` naming the field.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing._short import short
from zerfoo_cloud.pricing.currencies import check_currency
from zerfoo_cloud.pricing.money import format_micros, parse_micros

__all__ = [
    "BUDGET_FIELDS",
    "BUDGET_PERIODS",
    "DEFAULT_ALERT_AT",
    "MAX_BUDGET_MICROS",
    "SpendBudget",
    "budgets_from_list",
    "check_budget_set",
    "check_timezone",
]

#: The periods a budget may span: calendar periods (weeks start on Monday)
#: in the budget's time zone, or the whole lifetime of the tenant or key.
BUDGET_PERIODS = ("day", "week", "month", "lifetime")
#: The largest amount, in micro-units: integers up to this are exact in the
#: doubles every limiter store keeps.
MAX_BUDGET_MICROS = 2**53 - 1
#: The percents of the amount at which events are sent unless told otherwise.
DEFAULT_ALERT_AT = (50, 80, 100)
#: The keys of a budget's stored form, in the order they are written.
BUDGET_FIELDS = ("period", "amount", "currency", "timezone", "alert_at")
#: The longest time zone name read (IANA names are at most about 30).
_MAX_ZONE_NAME = 64
#: A whole budget, in percent.
_FULL = 100
#: The most thresholds one budget has.
_MAX_ALERTS = 100


def _refuse(field: str, why: str) -> InvalidConfigError:
    return InvalidConfigError(f"spend_budgets.{field}: {why}", field=field)


def check_timezone(name: object) -> str:
    """
    Return *name* if it is the IANA name of a time zone (``"Europe/Paris"``,
    ``"UTC"``).

    Raises:
        InvalidConfigError: anything else (field ``timezone``).
    """
    if type(name) is str and 0 < len(name) <= _MAX_ZONE_NAME:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
        else:
            return name
    why = f"unknown time zone {short(name)}; give an IANA name such as 'Europe/Paris'"
    raise _refuse("timezone", why)


def _check_period(value: object) -> str:
    if type(value) is str and value in BUDGET_PERIODS:
        return value
    why = f"unknown period {short(value)} (known: {', '.join(BUDGET_PERIODS)})"
    raise _refuse("period", why)


def _check_amount(value: object) -> int:
    if type(value) is not int or not 1 <= value <= MAX_BUDGET_MICROS:
        why = (
            f"an amount is an int of micro-units from 1 to {MAX_BUDGET_MICROS}, "
            f"not {short(value)}"
        )
        raise _refuse("amount", why)
    return value


def _check_alerts(value: object) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)) and len(value) <= _MAX_ALERTS:
        alerts = tuple(value)
        if all(type(p) is int and 1 <= p <= _FULL for p in alerts) and all(
            a < b for a, b in itertools.pairwise(alerts)
        ):
            return alerts
    why = (
        "alert_at is a list of percents from 1 to 100 in strictly increasing "
        f"order, not {short(value)}"
    )
    raise _refuse("alert_at", why)


def _currency(value: object) -> str:
    return check_currency(value, field="spend_budgets.currency")


@attrs.frozen
class SpendBudget:
    """
    The most money a tenant (or one key) may spend in one period.

    Attributes:
        period: one of `BUDGET_PERIODS`.
        amount: micro-units of *currency*, 1 to `MAX_BUDGET_MICROS`.
        currency: an ISO 4217 code (`zerfoo_cloud.pricing.check_currency`);
            it must be the price table's currency, or requests are refused.
        timezone: the IANA time zone whose calendar the period follows
            (ignored for ``"lifetime"``).
        alert_at: percents of *amount*, 1 to 100, strictly increasing: a
            `zerfoo_cloud.budgets.BudgetEvent` is sent once when the
            spending of a period reaches each.

    Raises:
        InvalidConfigError: any field out of range; the one-line message and
            ``field`` name it.

    .. versionadded:: 0.1.0
    """

    period: str = attrs.field(converter=_check_period)
    amount: int = attrs.field(converter=_check_amount)
    currency: str = attrs.field(converter=_currency)
    timezone: str = attrs.field(default="UTC", converter=check_timezone)
    alert_at: tuple[int, ...] = attrs.field(
        default=DEFAULT_ALERT_AT, converter=_check_alerts
    )

    def threshold_amount(self, percent: int) -> int:
        """
        The spending, in micro-units, at which the *percent* threshold is
        reached: *percent* of `amount`, rounded up.
        """
        return -(-self.amount * percent // _FULL)

    def to_dict(self) -> dict[str, Any]:
        """
        The stored (and shown) form: ``amount`` as decimal text
        (``"12.5"``), the other fields as they are.
        """
        return {
            "period": self.period,
            "amount": format_micros(self.amount),
            "currency": self.currency,
            "timezone": self.timezone,
            "alert_at": list(self.alert_at),
        }

    @classmethod
    def from_dict(cls, data: object) -> SpendBudget:
        """
        Read the form `to_dict` writes. ``timezone`` and ``alert_at`` may be
        left out (``"UTC"``, `DEFAULT_ALERT_AT`); ``amount`` is decimal text
        such as ``"12.50"``.

        Raises:
            InvalidConfigError: a missing, unknown or bad field; the message
                names it.
        """
        if not isinstance(data, Mapping):
            msg = "spend_budgets: a budget is an object of " + ", ".join(BUDGET_FIELDS)
            raise InvalidConfigError(msg, field="spend_budgets")
        unknown = [k for k in data if k not in BUDGET_FIELDS]
        if unknown:
            why = f"unknown key {short(unknown[0])} (known: {', '.join(BUDGET_FIELDS)})"
            raise _refuse("budget", why)
        for name in BUDGET_FIELDS[:3]:
            if name not in data:
                raise _refuse(name, "missing")
        amount = parse_micros(
            data["amount"], field="spend_budgets.amount", maximum=MAX_BUDGET_MICROS
        )
        return cls(
            period=data["period"],
            amount=amount,
            currency=data["currency"],
            timezone=data.get("timezone", "UTC"),
            alert_at=data.get("alert_at", DEFAULT_ALERT_AT),
        )


def check_budget_set(budgets: Iterable[object]) -> tuple[SpendBudget, ...]:
    """
    Return *budgets* as a tuple if each is a `SpendBudget` and no two share
    a period.

    Raises:
        InvalidConfigError: something else, or two budgets of one period.
    """
    if isinstance(budgets, (str, bytes, Mapping)):
        raise _refuse("budget", "give a list of budgets")
    found: list[SpendBudget] = []
    for budget in budgets:
        if not isinstance(budget, SpendBudget):
            raise _refuse("budget", f"not a SpendBudget: {short(budget)}")
        found.append(budget)
    periods = [b.period for b in found]
    for period in BUDGET_PERIODS:
        if periods.count(period) > 1:
            raise _refuse(
                "period", f"at most one budget per period; two are {period!r}"
            )
    return tuple(found)


def budgets_from_list(data: object) -> tuple[SpendBudget, ...]:
    """
    Read a stored list of budgets (`SpendBudget.to_dict` each).

    Raises:
        InvalidConfigError: it is not a list of valid budgets.
    """
    if not isinstance(data, list):
        raise _refuse("budget", "a list of budgets is expected")
    return check_budget_set(SpendBudget.from_dict(item) for item in data)
