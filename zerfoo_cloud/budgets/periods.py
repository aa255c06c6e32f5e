"""
Budget periods: the calendar period containing an instant, in a time zone.

A day runs from midnight to midnight on the zone's wall clock, an ISO week
from Monday's midnight to the next Monday's, a month from the 1st's midnight
to the next month's; a lifetime has no start and no end. Starts and ends are
aware datetimes in the zone: across a daylight saving change a day lasts 23
or 25 hours, as the zone's clocks say. A period's `BudgetPeriod.id` is
stable (the same for every instant in it, on every host) and names it in
limiter bucket keys.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import attrs

from zerfoo_cloud.budget_records import BUDGET_PERIODS, check_timezone
from zerfoo_cloud.errors import InvalidConfigError

__all__ = ["LIFETIME_ID", "BudgetPeriod", "period_at"]

#: The id of the one lifetime period (named as the kind).
LIFETIME_ID = "lifetime"


@attrs.frozen
class BudgetPeriod:
    """
    One period of a budget.

    Attributes:
        kind: one of `zerfoo_cloud.budget_records.BUDGET_PERIODS`.
        id: stable text naming the period: ``"2026-12-06"`` (day),
            ``"2026-W49"`` (ISO week), ``"2026-12"`` (month), `LIFETIME_ID`.
        start: the first instant of the period (aware, in the budget's
            zone), ``None`` for a lifetime.
        end: the first instant after it, ``None`` for a lifetime.

    .. versionadded:: 0.1.0
    """

    kind: str
    id: str
    start: datetime | None
    end: datetime | None

    @property
    def start_ts(self) -> float | None:
        """`start` as Unix seconds (``None`` for a lifetime)."""
        return None if self.start is None else self.start.timestamp()

    @property
    def end_ts(self) -> float | None:
        """`end` as Unix seconds (``None`` for a lifetime)."""
        return None if self.end is None else self.end.timestamp()


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(check_timezone(name))


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    # The first instant of *day* in *zone*. Where midnight does not exist
    # (a zone that springs forward at 00:00), the wall time is read with
    # fold=0, which `zoneinfo` maps past the gap: the day's first instant.
    local = datetime.combine(day, time(0), tzinfo=zone)
    # Round trip through UTC: the aware instant, normalised.
    return local.astimezone(timezone.utc).astimezone(zone)


def _bounds(kind: str, day: date) -> tuple[date, date, str]:
    # The first day, the first day after, and the id of the period of *day*.
    if kind == "day":
        return day, day + timedelta(days=1), day.isoformat()
    if kind == "week":
        first = day - timedelta(days=day.weekday())
        year, week, _ = day.isocalendar()
        return first, first + timedelta(days=7), f"{year:04d}-W{week:02d}"
    first = day.replace(day=1)
    following = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12  # noqa: PLR2004 - December
        else first.replace(month=first.month + 1)
    )
    return first, following, f"{day.year:04d}-{day.month:02d}"


def period_at(kind: str, zone_name: str, now: float) -> BudgetPeriod:
    """
    Return the period of kind *kind* (`BUDGET_PERIODS`) containing the
    instant *now* (Unix seconds) on the calendar of time zone *zone_name*.

    ``start <= now < end`` always holds (to the microsecond).

    Raises:
        InvalidConfigError: an unknown kind or time zone.
    """
    if kind == "lifetime":
        return BudgetPeriod(kind, LIFETIME_ID, None, None)
    if kind not in BUDGET_PERIODS:
        msg = f"period: unknown period {kind!r} (known: {', '.join(BUDGET_PERIODS)})"
        raise InvalidConfigError(msg, field="period")
    zone = _zone(zone_name)
    # The whole second: `fromtimestamp` rounds to the microsecond, which
    # would put an instant half a microsecond before midnight in the next
    # day. Midnights fall on whole seconds (offsets are whole seconds).
    local = datetime.fromtimestamp(math.floor(now), zone)
    first, following, ident = _bounds(kind, local.date())
    return BudgetPeriod(kind, ident, _midnight(first, zone), _midnight(following, zone))
