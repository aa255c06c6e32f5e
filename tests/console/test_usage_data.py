"""
The console's usage data: ranges of days, splits by model and by key,
totals, and errors and 429s from the audit log, on real LMDB stores.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import pytest

from zerfoo_cloud import AuditEntry, AuditLogger, BillingRecord, TokenMeter
from zerfoo_cloud.audit import AuditAction, AuditResult
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http.console._usage_data import (
    DEFAULT_RANGE_DAYS,
    MAX_RANGE_DAYS,
    DayOutcomes,
    DayRange,
    build_usage_report,
    default_range,
    parse_day_range,
    parse_split,
)
from zerfoo_cloud.stores.lmdb import LMDBStores

TODAY = date(2026, 3, 10)


def _at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)


@pytest.fixture(
    params=[
        pytest.param("lmdb_stores", id="lmdb"),
        pytest.param("postgres_stores", id="postgres"),
    ]
)
def meter(request: pytest.FixtureRequest) -> Iterator[TokenMeter]:
    """
    A meter on a fresh LMDB or PostgreSQL billing store.
    """
    stores = request.getfixturevalue(request.param)
    meter = TokenMeter(stores.billing)
    yield meter
    meter.close()


@pytest.fixture
def audit(lmdb_stores: LMDBStores) -> Iterator[AuditLogger]:
    """
    An audit logger on a fresh LMDB audit store.
    """
    logger = AuditLogger(lmdb_stores.audit)
    yield logger
    logger.close()


def _bill(meter: TokenMeter, *records: BillingRecord) -> None:
    meter.store.add(records)


def test_range_of_366_days_is_allowed_and_367_refused() -> None:
    """A range of MAX_RANGE_DAYS days is allowed; one day more is refused, naming from."""
    first = TODAY - timedelta(days=MAX_RANGE_DAYS - 1)
    assert parse_day_range(first.isoformat(), TODAY.isoformat(), TODAY).days == 366
    with pytest.raises(InvalidConfigError, match="at most 366 days") as caught:
        parse_day_range((first - timedelta(days=1)).isoformat(), None, TODAY)
    assert caught.value.field == "from"


def test_one_day_range() -> None:
    """from equal to to is one day, from midnight to the last microsecond UTC."""
    days = parse_day_range("2026-03-01", "2026-03-01", TODAY)
    assert days.days == 1
    assert days.dates() == [date(2026, 3, 1)]
    assert days.start() == datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert days.end() == datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=timezone.utc)


def test_missing_dates_default_to_the_last_30_days() -> None:
    """No from and no to: the DEFAULT_RANGE_DAYS days ending today; no from: ending at to."""
    assert parse_day_range(None, None, TODAY) == default_range(TODAY)
    assert parse_day_range("", "", TODAY).days == DEFAULT_RANGE_DAYS
    assert parse_day_range(None, "2026-01-31", TODAY) == DayRange(
        date(2026, 1, 2), date(2026, 1, 31)
    )
    assert parse_day_range(None, "1970-01-05", TODAY).first == date(1970, 1, 1)


@pytest.mark.parametrize(
    ("first", "last", "field", "message"),
    [
        ("2026-3-1", None, "from", "YYYY-MM-DD"),
        ("yesterday", None, "from", "YYYY-MM-DD"),
        ("2026-02-30", None, "from", "YYYY-MM-DD"),
        (None, "2026-13-01", "to", "YYYY-MM-DD"),
        ("2026-03-02", "2026-03-01", "to", "must not be before"),
        ("1969-12-31", "1970-01-01", "from", "1970-01-01 or later"),
        (None, "1969-12-31", "to", "1970-01-01 or later"),
        ("x" * 10_000, None, "from", "YYYY-MM-DD"),
    ],
)
def test_bad_ranges_are_refused_with_the_parameter_named(
    first: str | None, last: str | None, field: str, message: str
) -> None:
    """Each bad date or order is one clear error naming its parameter, quoting little."""
    with pytest.raises(InvalidConfigError, match=message) as caught:
        parse_day_range(first, last, TODAY)
    assert caught.value.field == field
    assert len(str(caught.value)) < 200


def test_split_is_model_or_key() -> None:
    """split defaults to model, takes key, and refuses anything else."""
    assert parse_split(None) == "model"
    assert parse_split("") == "model"
    assert parse_split("key") == "key"
    with pytest.raises(InvalidConfigError, match="split must be one of model, key"):
        parse_split("tenant")


def test_report_by_model_and_by_key(meter: TokenMeter) -> None:
    """Rows total tokens, requests and cost per day and model, or per day and key."""
    day1, day2 = date(2026, 3, 1), date(2026, 3, 2)
    _bill(
        meter,
        BillingRecord(
            "acme", 10, 5, _at(day1), "m1", cost=100, currency="USD", key_id="k1"
        ),
        BillingRecord(
            "acme", 1, 1, _at(day1, 13), "m2", cost=7, currency="USD", key_id="k1"
        ),
        BillingRecord(
            "acme", 2, 3, _at(day2), "m1", cost=9, currency="USD", key_id="k2"
        ),
        BillingRecord("other", 99, 99, _at(day1), "m1", cost=1, currency="USD"),
    )
    days = DayRange(day1, day2)
    by_model = build_usage_report("acme", days, "model", meter)
    assert [(r.day, r.name, r.requests, r.tokens, r.cost) for r in by_model.rows] == [
        (day1, "m1", 1, 15, 100),
        (day1, "m2", 1, 2, 7),
        (day2, "m1", 1, 5, 9),
    ]
    assert by_model.series == ("m1", "m2")
    by_key = build_usage_report("acme", days, "key", meter)
    assert [(r.day, r.name, r.requests, r.tokens, r.cost) for r in by_key.rows] == [
        (day1, "k1", 2, 17, 107),
        (day2, "k2", 1, 5, 9),
    ]
    for report in (by_model, by_key):
        assert report.requests == 3
        assert report.tokens == 22
        assert report.spend() == [("USD", 116)]
        assert report.errors() is None
        assert report.rate_limited() is None
    assert by_key.tokens_by_day() == [(day1, {"k1": 17}), (day2, {"k2": 5})]


def test_range_ends_are_utc_days(meter: TokenMeter) -> None:
    """A record at 23:59:59.999999 UTC counts on its day; one at the next midnight does not."""
    day = date(2026, 3, 1)
    last = datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=timezone.utc)
    _bill(
        meter,
        BillingRecord("acme", 1, 0, _at(day, 0)),
        BillingRecord("acme", 2, 0, last),
        BillingRecord("acme", 4, 0, last + timedelta(microseconds=1)),
        BillingRecord("acme", 8, 0, _at(day, 0) - timedelta(microseconds=1)),
    )
    report = build_usage_report("acme", DayRange(day, day), "model", meter)
    assert report.tokens == 3


def test_currencies_and_unpriced_records_are_kept_apart(meter: TokenMeter) -> None:
    """Spend totals per currency; unpriced records add tokens but no spend."""
    day = date(2026, 3, 1)
    _bill(
        meter,
        BillingRecord("acme", 1, 0, _at(day), "m", cost=5, currency="USD"),
        BillingRecord("acme", 1, 0, _at(day), "m", cost=6, currency="EUR"),
        BillingRecord("acme", 1, 0, _at(day), "m"),
    )
    report = build_usage_report("acme", DayRange(day, day), "model", meter)
    assert report.spend() == [("EUR", 6), ("USD", 5)]
    assert report.tokens == 3
    assert len(report.rows) == 3


def test_errors_and_429s_come_from_the_audit_log(
    lmdb_stores: LMDBStores, audit: AuditLogger
) -> None:
    """Inference entries count by day: 429s apart, other statuses of 400 and up as errors."""
    day1, day2 = date(2026, 3, 1), date(2026, 3, 2)
    for day, status, result in (
        (day1, 200, AuditResult.SUCCESS),
        (day1, 429, AuditResult.RATE_LIMITED),
        (day1, 429, AuditResult.RATE_LIMITED),
        (day1, 502, AuditResult.ERROR),
        (day2, 403, AuditResult.DENIED),
        (day2, 399, AuditResult.SUCCESS),
    ):
        audit.log(
            AuditEntry(
                _at(day), "acme", AuditAction.INFERENCE, result, status_code=status
            )
        )
    audit.log(
        AuditEntry(
            _at(day1), "acme", AuditAction.UPDATE, AuditResult.ERROR, status_code=500
        )
    )
    audit.log(
        AuditEntry(
            _at(day1),
            "other",
            AuditAction.INFERENCE,
            AuditResult.ERROR,
            status_code=500,
        )
    )
    audit.flush()
    meter = TokenMeter(lmdb_stores.billing)
    report = build_usage_report("acme", DayRange(day1, day2), "model", meter, audit)
    meter.close()
    assert report.outcomes == {
        day1: DayOutcomes(attempts=4, errors=1, rate_limited=2),
        day2: DayOutcomes(attempts=2, errors=1, rate_limited=0),
    }
    assert report.errors() == 2
    assert report.rate_limited() == 2


def test_no_records_is_an_empty_report(
    lmdb_stores: LMDBStores, audit: AuditLogger
) -> None:
    """A range without traffic has no rows, zero totals and zero outcomes on every day."""
    days = DayRange(date(2026, 3, 1), date(2026, 3, 3))
    meter = TokenMeter(lmdb_stores.billing)
    report = build_usage_report("acme", days, "key", meter, audit)
    meter.close()
    assert report.rows == ()
    assert report.series == ()
    assert report.tokens == 0
    assert report.spend() == []
    assert report.errors() == 0
    assert [tokens for _, tokens in report.tokens_by_day()] == [{}, {}, {}]


def test_bad_split_is_refused(meter: TokenMeter) -> None:
    """build_usage_report refuses a split other than model or key."""
    with pytest.raises(InvalidConfigError, match="split"):
        build_usage_report("acme", default_range(TODAY), "day", meter)
