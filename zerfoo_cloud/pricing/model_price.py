"""
The price of one model from one moment on, and the cost of one request.

A `ModelPrice` holds three rates, each in micro-units per million tokens
(so ``"0.15"`` a million tokens is ``150_000``): prompt tokens, completion
tokens, and prompt tokens served from a cache. `ModelPrice.cost` charges a
request exactly, in integers, rounded up once to the whole micro-unit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, NoReturn

import attrs

from zerfoo_cloud.billing_records import MAX_TOKENS
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing._short import short
from zerfoo_cloud.pricing.money import MICROS_PER_UNIT, format_micros, parse_micros

__all__ = [
    "MAX_PRICE_MICROS",
    "PRICE_KEYS",
    "TOKENS_PER_PRICE",
    "ModelPrice",
    "parse_instant",
]

#: Prices are per this many tokens.
TOKENS_PER_PRICE = 1_000_000
#: The highest rate: 1,000,000 units of the currency per million tokens,
#: in micro-units. Far above any real price, low enough that a misplaced
#: decimal point or a pasted number of the wrong field is caught.
MAX_PRICE_MICROS = 1_000_000 * MICROS_PER_UNIT
#: The keys of one price in a price file, in the order they are written.
PRICE_KEYS = ("effective_from", "input", "output", "cached_input")
#: The longest date-time text read (ISO 8601 with microseconds and offset
#: is 32 characters).
_MAX_INSTANT_TEXT = 64


def parse_instant(value: object, *, field: str) -> datetime:
    """
    Return *value*, an aware `datetime` or ISO 8601 text with a UTC offset
    (``"2026-01-01T00:00:00Z"``), as a `datetime` in UTC.

    Raises:
        InvalidConfigError: a naive date-time (it would mean a different
            moment on each server), text that is not ISO 8601, or another
            type; the message starts with *field*.

    .. versionadded:: 0.1.0
    """
    when = value
    if type(value) is str:
        when = None
        if len(value) <= _MAX_INSTANT_TEXT:
            with contextlib.suppress(ValueError):
                when = datetime.fromisoformat(value)
        if when is None:
            msg = (
                f"{field}: a date-time is ISO 8601 text such as "
                f"'2026-01-01T00:00:00Z', not {short(value)}"
            )
            raise InvalidConfigError(msg, field=field)
    if not isinstance(when, datetime):
        msg = f"{field}: a date-time is ISO 8601 text, not {short(value)}"
        raise InvalidConfigError(msg, field=field)
    if when.tzinfo is None or when.utcoffset() is None:
        msg = (
            f"{field}: a date-time needs a UTC offset ('Z' or '+01:00'), "
            f"not {short(value)}"
        )
        raise InvalidConfigError(msg, field=field)
    try:
        return when.astimezone(timezone.utc)
    except OverflowError:  # year 1 east of UTC, year 9999 west of it
        msg = f"{field}: a date-time between the years 1 and 9999 in UTC, not {short(value)}"
        raise InvalidConfigError(msg, field=field) from None


def _instant(value: object) -> datetime:
    return parse_instant(value, field="effective_from")


def _rate(name: str) -> Any:
    def check(instance: object, attribute: object, value: object) -> None:
        if type(value) is not int or not 0 <= value <= MAX_PRICE_MICROS:
            msg = (
                f"{name}: a rate is an int of micro-units per million tokens "
                f"from 0 to {MAX_PRICE_MICROS}, not {short(value)}"
            )
            raise InvalidConfigError(msg, field=name)

    return check


def _bad_counts(
    input_tokens: object, output_tokens: object, cached: object
) -> NoReturn:
    for name, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("cached_input_tokens", cached),
    ):
        if type(value) is not int or not 0 <= value <= MAX_TOKENS:
            msg = f"{name}: a token count is an int from 0 to {MAX_TOKENS}, not {short(value)}"
            raise InvalidConfigError(msg, field=name)
    msg = (
        f"cached_input_tokens: {cached} cached tokens is more than the "
        f"{input_tokens} input tokens they are part of"
    )
    raise InvalidConfigError(msg, field="cached_input_tokens")


@attrs.frozen
class ModelPrice:
    """
    A model's price from *effective_from* until the next price of the same
    model takes effect.

    Attributes:
        effective_from: when this price takes effect (aware; kept in UTC).
        input: micro-units per million prompt tokens not served from a cache.
        output: micro-units per million completion tokens.
        cached_input: micro-units per million prompt tokens served from a
            cache.

    Each rate is an `int` from 0 to `MAX_PRICE_MICROS`.

    Raises:
        InvalidConfigError: a rate or the date is out of range (``field``
            names it).

    .. versionadded:: 0.1.0
    """

    effective_from: datetime = attrs.field(converter=_instant)
    input: int = attrs.field(validator=_rate("input"))
    output: int = attrs.field(validator=_rate("output"))
    cached_input: int = attrs.field(validator=_rate("cached_input"))

    def cost(
        self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
    ) -> int:
        """
        Return the cost of one request in micro-units: exactly
        ``(input_tokens - cached_input_tokens) * input + cached_input_tokens
        * cached_input + output_tokens * output``, divided by a million and
        rounded up to the whole micro-unit.

        *input_tokens* counts every prompt token, those served from a cache
        included (OpenAI's ``prompt_tokens``); *cached_input_tokens* (its
        ``prompt_tokens_details.cached_tokens``) is the part of them charged
        at the cached rate. Integer arithmetic only: the result is the same
        on every machine, and a request that used anything priced above
        zero costs at least one micro-unit.

        Raises:
            InvalidConfigError: a count is not an int from 0 to
                `zerfoo_cloud.metering.MAX_TOKENS`, or more tokens were
                cached than sent.
        """
        # One test on the hot path; the slow path says which count is wrong.
        if not (
            type(input_tokens) is int
            and type(output_tokens) is int
            and type(cached_input_tokens) is int
            and 0 <= cached_input_tokens <= input_tokens <= MAX_TOKENS
            and 0 <= output_tokens <= MAX_TOKENS
        ):
            _bad_counts(input_tokens, output_tokens, cached_input_tokens)
        exact = (
            (input_tokens - cached_input_tokens) * self.input
            + cached_input_tokens * self.cached_input
            + output_tokens * self.output
        )
        return -(-exact // TOKENS_PER_PRICE)

    @classmethod
    def from_mapping(cls, data: object, *, field: str = "price") -> ModelPrice:
        """
        Return the price a price file writes as *data*: a mapping of
        ``effective_from`` (ISO 8601 text with an offset, or an aware
        `datetime`), ``input`` and ``output`` and optionally
        ``cached_input`` (amounts per million tokens, as `parse_micros`
        reads them). Without ``cached_input``, cached prompt tokens cost the
        ``input`` rate.

        Raises:
            InvalidConfigError: a missing, unknown or bad key; the message
                and ``field`` name it under *field* (``price.input``).
        """
        if not isinstance(data, Mapping):
            msg = f"{field}: a price is a table of {', '.join(PRICE_KEYS)}"
            raise InvalidConfigError(msg, field=field)
        unknown = [key for key in data if key not in PRICE_KEYS]
        if unknown:
            name = f"{field}.{unknown[0]}" if type(unknown[0]) is str else field
            msg = f"{name}: unknown key {short(unknown[0])} (known: {', '.join(PRICE_KEYS)})"
            raise InvalidConfigError(msg, field=name)
        for key in PRICE_KEYS[:3]:
            if key not in data:
                msg = f"{field}.{key}: missing"
                raise InvalidConfigError(msg, field=f"{field}.{key}")
        rates = {
            key: parse_micros(
                data[key], field=f"{field}.{key}", maximum=MAX_PRICE_MICROS
            )
            for key in PRICE_KEYS[1:]
            if key in data
        }
        rates.setdefault("cached_input", rates["input"])
        return cls(
            parse_instant(data["effective_from"], field=f"{field}.effective_from"),
            **rates,
        )

    def to_mapping(self) -> dict[str, str]:
        """
        Return the price as a price file writes it: the date as ISO 8601 text
        in UTC (``Z``), the rates as decimal text per million tokens.
        `from_mapping` reads it back to an equal price.
        """
        return {
            "effective_from": _iso(self.effective_from),
            "input": format_micros(self.input),
            "output": format_micros(self.output),
            "cached_input": format_micros(self.cached_input),
        }


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
