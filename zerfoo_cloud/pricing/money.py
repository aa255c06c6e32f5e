"""
Money as integers of micro-units, read from and written as decimal text.

Every amount of money in zerfoo-cloud is an `int` of micro-units: millionths
(10⁻⁶) of the currency's unit, whatever the currency's own minor unit is
(a US cent is 10,000 micro-units, a yen 1,000,000). Integers add exactly, so
a total is always the sum of its parts to the micro-unit; floats never
appear.

Amounts come in as decimal text: `parse_micros` reads ``"0.15"``, ``"12"`` or
``"0.000001"`` exactly, and refuses what is not a plain decimal of at most
six places (no sign, no exponent, no ``NaN`` or ``Infinity``, no float).
`format_micros` writes an amount back in the same form, so the two round
trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

import attrs

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing._short import short
from zerfoo_cloud.pricing.currencies import check_currency

__all__ = [
    "DECIMAL_PLACES",
    "MICROS_PER_UNIT",
    "UNPRICED",
    "Money",
    "format_cost",
    "format_micros",
    "parse_micros",
]

#: How a cost without a currency (a billing record made without a price) is
#: shown.
UNPRICED = "unpriced"

#: Micro-units in one unit of a currency.
MICROS_PER_UNIT = 1_000_000
#: The most digits an amount may have after its decimal point.
DECIMAL_PLACES = 6
#: The longest decimal text `parse_micros` reads (a price cap has 7 digits
#: before the point; the rest is room for leading zeros).
_MAX_TEXT = 40
#: A plain decimal: digits, then optionally a point and digits.
_PLAIN = re.compile(r"([0-9]+)(?:\.([0-9]+))?", re.ASCII)


def _refuse(field: str, value: object, why: str) -> InvalidConfigError:
    return InvalidConfigError(f"{field}: {why}, not {short(value)}", field=field)


def _from_text(text: str, field: str) -> int:
    if len(text) <= _MAX_TEXT:
        match = _PLAIN.fullmatch(text)
        if match is not None:
            whole, fraction = match.groups()
            fraction = (fraction or "").rstrip("0")
            if len(fraction) <= DECIMAL_PLACES:
                return int(whole) * MICROS_PER_UNIT + int(
                    fraction.ljust(DECIMAL_PLACES, "0")
                )
            why = f"an amount has at most {DECIMAL_PLACES} decimal places"
            raise _refuse(field, text, why)
    if text.startswith("-"):
        why = "an amount must not be negative"
    elif len(text) > _MAX_TEXT:
        why = f"an amount is at most {_MAX_TEXT} characters of decimal text"
    else:
        why = "an amount is a plain decimal such as '0.15' (no exponent or sign)"
    raise _refuse(field, text, why)


def _from_decimal(value: Decimal, field: str) -> int:
    # Exact whatever the decimal context: digits and exponent are read as
    # they are, never rounded by an arithmetic operation.
    if not value.is_finite():
        raise _refuse(field, value, "an amount must be a finite number")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    count = len(digits)
    while count > 1 and digits[count - 1] == 0 and exponent < -DECIMAL_PLACES:
        count -= 1
        exponent += 1
    digits = digits[:count]
    if not any(digits):
        return 0
    if sign:
        raise _refuse(field, value, "an amount must not be negative")
    if exponent < -DECIMAL_PLACES:
        why = f"an amount has at most {DECIMAL_PLACES} decimal places"
        raise _refuse(field, value, why)
    if count + exponent > _MAX_TEXT:
        why = f"an amount has at most {_MAX_TEXT} digits"
        raise _refuse(field, value, why)
    scale: int = 10 ** (exponent + DECIMAL_PLACES)
    return int("".join(map(str, digits))) * scale


def parse_micros(value: object, *, field: str, maximum: int | None = None) -> int:
    """
    Return the amount *value* as an exact `int` of micro-units.

    *value* is decimal text (``"0.15"``: digits, optionally a point and at
    most `DECIMAL_PLACES` digits; no sign, exponent, spaces or
    underscores), a `decimal.Decimal` (finite, at most six places once
    trailing zeros are dropped) or an `int` of whole units. A `float` is
    refused: most decimal amounts have no exact float, so a float in money
    is a rounding error waiting to be billed. When *maximum* (micro-units)
    is given, a larger amount is refused too.

    Raises:
        InvalidConfigError: any other value; the message, one line, starts
            with *field*, and ``field`` is *field*.

    .. versionadded:: 0.1.0
    """
    if isinstance(value, str):
        micros = _from_text(str(value), field)
    elif isinstance(value, Decimal):
        micros = _from_decimal(value, field)
    elif type(value) is int:
        if value < 0:
            raise _refuse(field, value, "an amount must not be negative")
        if maximum is not None and value > maximum // MICROS_PER_UNIT:
            micros = maximum + 1
        else:
            micros = value * MICROS_PER_UNIT
    elif isinstance(value, float):
        why = "give an amount as decimal text such as '0.15' (a float is inexact)"
        raise _refuse(field, value, why)
    else:
        why = f"an amount is decimal text such as '0.15', not a {type(value).__name__}"
        msg = f"{field}: {why}"
        raise InvalidConfigError(msg, field=field)
    if maximum is not None and micros > maximum:
        why = f"an amount is at most {format_micros(maximum)}"
        raise _refuse(field, value, why)
    return micros


def format_micros(micros: int) -> str:
    """
    Return *micros* micro-units as the shortest decimal text of the amount:
    ``150000`` is ``"0.15"``, ``2000000`` is ``"2"``, ``-1`` is
    ``"-0.000001"``.

    `parse_micros` reads the text of a non-negative amount back to the same
    integer.

    .. versionadded:: 0.1.0
    """
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_UNIT)
    if not fraction:
        return f"{sign}{whole}"
    digits = f"{fraction:0{DECIMAL_PLACES}d}".rstrip("0")
    return f"{sign}{whole}.{digits}"


def format_cost(micros: int, currency: str) -> str:
    """
    Return a stored cost as reports show it: ``"0.15 USD"`` (`format_micros`
    and the currency), or `UNPRICED` when *currency* is ``""`` (records made
    without a price, whose cost is 0 because it is unknown, not free).

    .. versionadded:: 0.1.0
    """
    if not currency:
        return UNPRICED
    return f"{format_micros(micros)} {currency}"


@attrs.frozen
class Money:
    """
    An amount of money in one currency: an `int` of micro-units and an
    ISO 4217 code (`zerfoo_cloud.pricing.CURRENCIES`).

    Two amounts add only in the same currency. ``str(money)`` is
    ``"0.15 USD"``; `amount` is the decimal text alone.

    Raises:
        InvalidConfigError: *micros* is not an `int`, or *currency* is not
            a known code.

    .. versionadded:: 0.1.0
    """

    micros: int
    currency: str = attrs.field(converter=check_currency)

    def __attrs_post_init__(self) -> None:
        if type(self.micros) is not int:
            msg = (
                f"micros: an amount is an int of micro-units, not {short(self.micros)}"
            )
            raise InvalidConfigError(msg, field="micros")

    @classmethod
    def parse(cls, value: object, currency: str) -> Money:
        """
        Return the amount *value* (decimal text, as `parse_micros` reads it)
        in *currency*.
        """
        return cls(parse_micros(value, field="amount"), currency)

    @classmethod
    def total(cls, amounts: Iterable[Money], currency: str) -> Money:
        """
        Return the exact sum of *amounts*, all in *currency* (zero when
        there are none).

        Raises:
            InvalidConfigError: an amount is in another currency.
        """
        micros = 0
        for money in amounts:
            micros += _same(money, currency).micros
        return cls(micros, currency)

    @property
    def amount(self) -> str:
        """The amount as decimal text (`format_micros`)."""
        return format_micros(self.micros)

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        return Money(self.micros + _same(other, self.currency).micros, self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def _same(money: Money, currency: str) -> Money:
    if money.currency != currency:
        msg = f"currency: cannot add {money.currency} to {currency}"
        raise InvalidConfigError(msg, field="currency")
    return money
