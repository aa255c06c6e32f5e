"""
Numbers and times for people, formatted on the server: thousands
separators, money, and relative times ("3 minutes ago") beside the exact
UTC time.
"""

from __future__ import annotations

from datetime import datetime, timezone

from zerfoo_cloud.pricing import format_cost

__all__ = ["money", "relative_time", "thousands", "utc_text"]

_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_MONTH = 30 * _DAY
_YEAR = 365 * _DAY
#: Each span, the unit it is counted in and that unit's length in seconds.
_UNITS = (
    (_MINUTE, "second", 1),
    (_HOUR, "minute", _MINUTE),
    (_DAY, "hour", _HOUR),
    (_MONTH, "day", _DAY),
    (_YEAR, "month", _MONTH),
)
#: Less apart than this is "just now".
_JUST_NOW = 10


def thousands(value: int) -> str:
    """
    *value* with a comma between each group of three digits:
    ``1234567`` -> ``"1,234,567"``.
    """
    return f"{value:,}"


def money(micros: int, currency: str) -> str:
    """
    An amount of micro-units as reports show it (``"1,234.5 USD"``;
    `zerfoo_cloud.pricing.format_cost`, with thousands separators in the
    whole part; ``"unpriced"`` without a currency).
    """
    text = format_cost(micros, currency)
    if not currency:
        return text
    number, _, code = text.partition(" ")
    sign = "-" if number.startswith("-") else ""
    whole, dot, fraction = number.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}{dot}{fraction} {code}"


def utc_text(ts: float) -> str:
    """
    Unix time *ts* as exact UTC text: ``"2026-12-06 07:40:05 UTC"``.
    """
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def relative_time(ts: float, now: float) -> str:
    """
    How long ago (or how far ahead) *ts* is at *now*, for people: ``"just
    now"`` within 10 seconds, else ``"3 minutes ago"`` or ``"in 2 days"``,
    counted in the largest whole unit (seconds up to a minute, then
    minutes, hours, days up to 30, months up to 365 days, then years).
    """
    delta = now - ts
    span = abs(delta)
    if span < _JUST_NOW:
        return "just now"
    for limit, unit, size in _UNITS:
        if span < limit:
            text = _plural(int(span // size), unit)
            break
    else:
        text = _plural(int(span // _YEAR), "year")
    return f"{text} ago" if delta > 0 else f"in {text}"
