"""
Budget periods: the calendar period containing an instant, in a time zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerfoo_cloud.budgets import LIFETIME_ID, period_at
from zerfoo_cloud.errors import InvalidConfigError

ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
]
KINDS = ["day", "week", "month"]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@given(
    st.sampled_from(KINDS),
    st.sampled_from(ZONES),
    st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),
)
def test_the_period_contains_the_instant(kind: str, zone: str, now: float) -> None:
    period = period_at(kind, zone, now)
    assert period.start is not None
    assert period.end is not None
    assert period.start_ts is not None
    assert period.end_ts is not None
    assert period.start_ts <= now < period.end_ts
    # Every instant of the period has the same id; the next one another.
    assert period_at(kind, zone, period.start_ts).id == period.id
    assert period_at(kind, zone, period.end_ts - 1e-3).id == period.id
    following = period_at(kind, zone, period.end_ts)
    assert following.id != period.id
    assert following.start == period.end
    # It starts at a local midnight (or just past a gap there).
    local = period.start.astimezone(ZoneInfo(zone))
    assert local.time().minute == 0
    if kind == "week":
        assert local.weekday() == 0
    if kind == "month":
        assert local.day == 1


def test_the_last_second_of_a_month() -> None:
    last = period_at("month", "UTC", _ts("2026-12-31T23:59:59.999+00:00"))
    first = period_at("month", "UTC", _ts("2027-01-01T00:00:00+00:00"))
    assert (last.id, first.id) == ("2026-12", "2027-01")
    assert last.end == first.start == datetime(2027, 1, 1, tzinfo=ZoneInfo("UTC"))


def test_a_month_in_a_time_zone() -> None:
    # 23:30 UTC on 31 January is already February in Paris.
    assert (
        period_at("month", "Europe/Paris", _ts("2026-01-31T23:30:00+00:00")).id
        == "2026-02"
    )
    assert period_at("month", "UTC", _ts("2026-01-31T23:30:00+00:00")).id == "2026-01"


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Paris", "2026-03-29", 23),
        ("Europe/Paris", "2026-10-25", 25),
        ("America/New_York", "2026-03-08", 23),
        ("America/New_York", "2026-11-01", 25),
        ("UTC", "2026-03-29", 24),
    ],
)
def test_days_across_daylight_saving_changes(zone: str, day: str, hours: int) -> None:
    noon = datetime.fromisoformat(day + "T12:00").replace(tzinfo=ZoneInfo(zone))
    period = period_at("day", zone, noon.timestamp())
    assert period.id == day
    assert period.start is not None
    assert period.end is not None
    # Aware datetimes of one zone subtract as wall times: compare instants.
    assert period.end_ts is not None
    assert period.start_ts is not None
    assert period.end_ts - period.start_ts == timedelta(hours=hours).total_seconds()
    assert period.start.isoformat().startswith(day + "T00:00:00")


def test_a_month_across_a_daylight_saving_change() -> None:
    period = period_at("month", "Europe/Paris", _ts("2026-03-15T12:00:00+00:00"))
    assert period.start is not None
    assert period.end is not None
    assert period.start.isoformat() == "2026-03-01T00:00:00+01:00"
    assert period.end.isoformat() == "2026-04-01T00:00:00+02:00"
    assert period.end_ts is not None
    assert period.start_ts is not None
    assert period.end_ts - period.start_ts == (31 * 24 - 1) * 3600


def test_a_leap_day() -> None:
    day = period_at("day", "UTC", _ts("2028-02-29T12:00:00+00:00"))
    month = period_at("month", "UTC", _ts("2028-02-29T23:59:59+00:00"))
    assert day.id == "2028-02-29"
    assert month.id == "2028-02"
    assert month.end == datetime(2028, 3, 1, tzinfo=ZoneInfo("UTC"))
    assert period_at("month", "UTC", _ts("2028-03-01T00:00:00+00:00")).id == "2028-03"


def test_iso_weeks_start_on_monday() -> None:
    # Sunday 2026-01-04 is in ISO week 2026-W01 (Monday 2025-12-29 on).
    period = period_at("week", "UTC", _ts("2026-01-04T23:59:59+00:00"))
    assert period.id == "2026-W01"
    assert period.start == datetime(2025, 12, 29, tzinfo=ZoneInfo("UTC"))
    assert period_at("week", "UTC", _ts("2026-01-05T00:00:00+00:00")).id == "2026-W02"


def test_the_lifetime() -> None:
    period = period_at("lifetime", "Europe/Paris", 0.0)
    assert (period.id, period.start, period.end) == (LIFETIME_ID, None, None)
    assert period.start_ts is None


@pytest.mark.parametrize(("kind", "zone"), [("year", "UTC"), ("day", "Nowhere/City")])
def test_unknown_kinds_and_zones(kind: str, zone: str) -> None:
    with pytest.raises(InvalidConfigError):
        period_at(kind, zone, 0.0)


def test_utc_offsets_are_honoured() -> None:
    period = period_at(
        "day", "Asia/Kolkata", datetime(2026, 6, 1, 20, tzinfo=timezone.utc).timestamp()
    )
    assert period.id == "2026-06-02"
