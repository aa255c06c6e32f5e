"""
What the console's Usage and Overview pages show: a tenant's tokens,
requests and spend per UTC day over a range of days, split by model or by
API key, and its errors and 429s.

Sources, the cheapest that are correct:

- tokens, requests and spend come from the billing store, through the
  meter: split by model, `TokenMeter.summary` totals them by model and day
  (in the database, for stores that total records themselves); split by
  key, the summary cannot group by key, so the records of the range are
  read (`TokenMeter.query`) and totalled here. *Requests* are the billed
  ones: every admitted request has exactly one billing record.
- errors and 429s come from the audit log (one entry per request, admitted
  or refused; billing records hold no status): its inference entries of
  the range, counted by UTC day. Without an audit log they are unknown
  (``None``), never shown as zero.

Every function here may wait on a database: callers on the event loop run
them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from zerfoo_cloud.audit import AuditAction
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http.admin._report_routes import UsageMeter

if TYPE_CHECKING:
    from zerfoo_cloud.audit_records.entry import AuditEntry
    from zerfoo_cloud.billing_records import BillingRecord, UsageSummary

__all__ = [
    "DEFAULT_RANGE_DAYS",
    "FIRST_DAY",
    "MAX_RANGE_DAYS",
    "SPLITS",
    "AuditSource",
    "DayOutcomes",
    "DayRange",
    "UsageReport",
    "UsageRow",
    "UsageSource",
    "build_usage_report",
    "default_range",
    "parse_day_range",
    "parse_split",
]

#: The longest range of days one report covers (a leap year).
MAX_RANGE_DAYS = 366
#: The days a report covers when no range is asked for (ending today).
DEFAULT_RANGE_DAYS = 30
#: The first day a report can cover (stores keep records by Unix time).
FIRST_DAY = date(1970, 1, 1)
#: What a report's rows can be split by.
SPLITS = ("model", "key")
#: The first status code counted as an error.
_FIRST_ERROR_STATUS = 400
_TOO_MANY_REQUESTS = 429
#: The longest text quoted back in an error message.
_QUOTE = 40


@runtime_checkable
class UsageSource(UsageMeter, Protocol):
    """
    **Protocol**: What a usage report reads of a `zerfoo_cloud.TokenMeter`:
    its `summary` (the admin API's `UsageMeter`) and its records.

    .. versionadded:: 0.1.0
    """

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> Sequence[BillingRecord]:
        """
        The tenant's records in ``[start, end]``, oldest first.
        """


class AuditSource(Protocol):
    """
    **Protocol**: What a usage report reads of a `zerfoo_cloud.AuditLogger`.

    .. versionadded:: 0.1.0
    """

    def query(self, tenant_id: str, start: datetime, end: datetime) -> list[AuditEntry]:
        """
        The tenant's entries in ``[start, end]``, oldest first.
        """


@attrs.frozen
class DayRange:
    """
    The UTC days *first* to *last*, both included; at most `MAX_RANGE_DAYS`.

    Raises:
        InvalidConfigError: *last* before *first*, or too many days.

    .. versionadded:: 0.1.0
    """

    first: date
    last: date

    def __attrs_post_init__(self) -> None:
        if self.first < FIRST_DAY:
            msg = f"from must be {FIRST_DAY} or later, not {self.first}"
            raise InvalidConfigError(msg, field="from")
        if self.last < self.first:
            msg = f"to ({self.last}) must not be before from ({self.first})"
            raise InvalidConfigError(msg, field="to")
        if self.days > MAX_RANGE_DAYS:
            msg = f"a range covers at most {MAX_RANGE_DAYS} days, not {self.days}"
            raise InvalidConfigError(msg, field="from")

    @property
    def days(self) -> int:
        """
        How many days the range covers (1 or more).
        """
        return (self.last - self.first).days + 1

    def dates(self) -> list[date]:
        """
        Every day of the range, in order.
        """
        return [self.first + timedelta(days=n) for n in range(self.days)]

    def start(self) -> datetime:
        """
        The first instant of the range (midnight UTC of *first*).
        """
        return datetime.combine(self.first, time.min, timezone.utc)

    def end(self) -> datetime:
        """
        The last instant of the range (the last microsecond of *last*, UTC).
        """
        return datetime.combine(self.last, time.max, timezone.utc)


def default_range(today: date) -> DayRange:
    """
    The `DEFAULT_RANGE_DAYS` days ending *today*.

    .. versionadded:: 0.1.0
    """
    return DayRange(today - timedelta(days=DEFAULT_RANGE_DAYS - 1), today)


def _day(text: str, field: str) -> date:
    if len(text) == len("YYYY-MM-DD"):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    msg = f"{field} must be a date as YYYY-MM-DD, not {text[:_QUOTE]!r}"
    raise InvalidConfigError(msg, field=field)


def parse_day_range(first: str | None, last: str | None, today: date) -> DayRange:
    """
    The range of the ``from`` and ``to`` query parameters (``YYYY-MM-DD``,
    UTC days, both included).

    Missing ``to`` means *today*; missing ``from`` means `DEFAULT_RANGE_DAYS`
    days ending at ``to``; both missing: `default_range`. Empty text counts
    as missing.

    Raises:
        InvalidConfigError: a date that is not ``YYYY-MM-DD``, ``to`` before
            ``from``, or more than `MAX_RANGE_DAYS` days (``field`` names
            the parameter).

    .. versionadded:: 0.1.0
    """
    end = _day(last, "to") if last else today
    if first:
        return DayRange(_day(first, "from"), end)
    if end < FIRST_DAY:
        msg = f"to must be {FIRST_DAY} or later, not {end}"
        raise InvalidConfigError(msg, field="to")
    start = end - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    return DayRange(max(start, FIRST_DAY), end)


def parse_split(text: str | None) -> str:
    """
    The ``split`` query parameter: ``"model"`` (the default) or ``"key"``.

    Raises:
        InvalidConfigError: anything else (``field`` is ``"split"``).

    .. versionadded:: 0.1.0
    """
    if not text:
        return SPLITS[0]
    if text not in SPLITS:
        msg = f"split must be one of {', '.join(SPLITS)}, not {text[:_QUOTE]!r}"
        raise InvalidConfigError(msg, field="split")
    return text


@attrs.frozen
class UsageRow:
    """
    One day's use by one model or key, in one currency.

    *name* is the model or the key id (``""`` when the records did not
    say); *cost* is in micro-units of *currency* (``""``: not priced).

    .. versionadded:: 0.1.0
    """

    day: date
    name: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: int
    currency: str

    @property
    def tokens(self) -> int:
        """
        Input plus output tokens.
        """
        return self.input_tokens + self.output_tokens


@attrs.frozen
class DayOutcomes:
    """
    One day's requests that the audit log saw end badly: *errors* (a
    status of 400 or more other than 429) and *rate_limited* (429), out of
    *attempts* (every inference request, refused ones included).

    .. versionadded:: 0.1.0
    """

    attempts: int = 0
    errors: int = 0
    rate_limited: int = 0


@attrs.frozen
class UsageReport:
    """
    A tenant's usage over a `DayRange`, split by model or key.

    *rows* are ordered by day, name and currency; *series* names each model
    or key once, most tokens first (ties by name); *outcomes* maps each day
    of the range to its `DayOutcomes`, or is ``None`` without an audit log.

    .. versionadded:: 0.1.0
    """

    days: DayRange
    split: str
    rows: tuple[UsageRow, ...]
    outcomes: dict[date, DayOutcomes] | None = None

    @property
    def series(self) -> tuple[str, ...]:
        """
        Each model or key once, most tokens over the range first.
        """
        tokens: dict[str, int] = {}
        for row in self.rows:
            tokens[row.name] = tokens.get(row.name, 0) + row.tokens
        return tuple(sorted(tokens, key=lambda name: (-tokens[name], name)))

    @property
    def requests(self) -> int:
        """
        The billed requests of the range.
        """
        return sum(row.requests for row in self.rows)

    @property
    def tokens(self) -> int:
        """
        The tokens of the range, input and output.
        """
        return sum(row.tokens for row in self.rows)

    def spend(self) -> list[tuple[str, int]]:
        """
        The cost of the range per currency, ``[(currency, micros)]`` sorted
        by currency; unpriced records (currency ``""``) are left out.
        """
        totals: dict[str, int] = {}
        for row in self.rows:
            if row.currency:
                totals[row.currency] = totals.get(row.currency, 0) + row.cost
        return sorted(totals.items())

    def errors(self) -> int | None:
        """
        The errors of the range, or ``None`` without an audit log.
        """
        if self.outcomes is None:
            return None
        return sum(o.errors for o in self.outcomes.values())

    def rate_limited(self) -> int | None:
        """
        The 429s of the range, or ``None`` without an audit log.
        """
        if self.outcomes is None:
            return None
        return sum(o.rate_limited for o in self.outcomes.values())

    def tokens_by_day(self) -> list[tuple[date, dict[str, int]]]:
        """
        Every day of the range with its tokens per series (days without
        use map to ``{}``): the chart's data.
        """
        per_day: dict[date, dict[str, int]] = {day: {} for day in self.days.dates()}
        for row in self.rows:
            day = per_day[row.day]
            day[row.name] = day.get(row.name, 0) + row.tokens
        return list(per_day.items())


def _rows_by_model(summaries: Iterable[UsageSummary]) -> list[UsageRow]:
    return [
        UsageRow(
            s.day or date.min,
            s.model or "",
            s.requests,
            s.input_tokens,
            s.output_tokens,
            s.cost,
            s.currency,
        )
        for s in summaries
    ]


def _rows_by_key(records: Iterable[BillingRecord]) -> list[UsageRow]:
    totals: dict[tuple[date, str, str], list[int]] = {}
    for r in records:
        group = (r.timestamp.date(), r.key_id, r.currency)
        t = totals.get(group)
        if t is None:
            totals[group] = [1, r.input_tokens, r.output_tokens, r.cost]
        else:
            t[0] += 1
            t[1] += r.input_tokens
            t[2] += r.output_tokens
            t[3] += r.cost
    return [
        UsageRow(day, key_id, t[0], t[1], t[2], t[3], currency)
        for (day, key_id, currency), t in totals.items()
    ]


def _outcomes(entries: Iterable[AuditEntry], days: DayRange) -> dict[date, DayOutcomes]:
    counts: dict[date, list[int]] = {day: [0, 0, 0] for day in days.dates()}
    for entry in entries:
        if entry.action is not AuditAction.INFERENCE or entry.timestamp is None:
            continue
        c = counts.get(entry.timestamp.date())
        if c is None:
            continue
        c[0] += 1
        if entry.status_code == _TOO_MANY_REQUESTS:
            c[2] += 1
        elif entry.status_code >= _FIRST_ERROR_STATUS:
            c[1] += 1
    return {day: DayOutcomes(*c) for day, c in counts.items()}


def build_usage_report(
    tenant_id: str,
    days: DayRange,
    split: str,
    meter: UsageSource,
    audit: AuditSource | None = None,
) -> UsageReport:
    """
    The usage of *tenant_id* over *days*, split by ``"model"`` or ``"key"``
    (see the module for where each figure comes from).

    It waits on the stores: call it in a worker thread from the event loop.

    Raises:
        InvalidConfigError: *split* is not one of `SPLITS`.

    .. versionadded:: 0.1.0
    """
    split = parse_split(split)
    start, end = days.start(), days.end()
    if split == "model":
        rows = _rows_by_model(meter.summary(tenant_id, start, end, ("model", "day")))
    else:
        rows = _rows_by_key(meter.query(tenant_id, start, end))
    rows.sort(key=lambda r: (r.day, r.name, r.currency))
    outcomes = (
        None if audit is None else _outcomes(audit.query(tenant_id, start, end), days)
    )
    return UsageReport(days, split, tuple(rows), outcomes)
