"""
Durations and points in time given on the command line: ``90s``, ``15m``,
``1h``, ``30d``, ``2w``, or an ISO 8601 time (UTC unless an offset is given).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

from zerfoo_cloud._extras import needs_extra

with needs_extra("cli", "the zerfoo-cloud command"):
    import click

__all__ = ["parse_duration", "parse_expiry"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"([0-9]{1,9})([smhdw])")


def parse_duration(text: str, option: str) -> float:
    """
    Return the seconds of *text*: a whole number and a unit (``s``, ``m``,
    ``h``, ``d`` or ``w``), or ``0``.

    Raises:
        click.BadParameter: it is not one (naming *option*).
    """
    if text == "0":
        return 0.0
    match = _DURATION.fullmatch(text)
    if match is None:
        msg = f"{text[:40]!r} is not a duration such as 90s, 15m, 1h, 30d or 2w"
        raise click.BadParameter(msg, param_hint=option)
    return float(int(match[1]) * _UNITS[match[2]])


def parse_expiry(text: str, now: float) -> float:
    """
    Return the Unix time *text* names: a duration after *now* (``30d``) or
    an ISO 8601 time.

    Raises:
        click.BadParameter: it is neither (option ``--expires``).
    """
    if _DURATION.fullmatch(text):
        return now + parse_duration(text, "--expires")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text[:40]!r} is neither a duration such as 30d nor an ISO 8601 time"
        raise click.BadParameter(msg, param_hint="--expires") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    stamp = when.timestamp()
    if not math.isfinite(stamp):  # pragma: no cover - datetimes are finite
        raise click.BadParameter(text[:40], param_hint="--expires")
    return stamp
