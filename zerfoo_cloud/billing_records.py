"""
Billing records: what a `BillingStore` keeps of each finished request.

A `BillingRecord` (tenant, tokens, model, request id, time, and the cost
computed when it was made, with its currency and the API key used) checks
its own fields; `UsageSummary`, `summary_rows` and `summarize` total
records (tokens, requests and cost) by model and day; `new_request_id` makes the unique request id every record
carries. Records sit below the meter and the stores: both import them, and
they import neither.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any

import attrs

from zerfoo_cloud._field_limits import MAX_MODEL_LENGTH, MAX_TENANT_ID_BYTES
from zerfoo_cloud._fork import on_fork
from zerfoo_cloud.errors import InvalidConfigError

__all__ = [
    "MAX_COST",
    "MAX_KEY_ID_LENGTH",
    "MAX_REQUEST_ID_LENGTH",
    "MAX_TOKENS",
    "SUMMARY_KEYS",
    "BillingRecord",
    "UsageSummary",
    "billable_model",
    "new_request_id",
    "summarize",
    "summary_rows",
]

#: A request id is 1 to this many visible ASCII characters.
MAX_REQUEST_ID_LENGTH = 128
#: The largest token count of one record (a signed 64-bit integer).
MAX_TOKENS = 2**63 - 1
#: The largest cost of one record, in micro-units (a signed 64-bit integer).
MAX_COST = 2**63 - 1
#: A key id is empty or 1 to this many visible ASCII characters.
MAX_KEY_ID_LENGTH = 128
#: What `TokenMeter.summary` can group by.
SUMMARY_KEYS = ("model", "day")


class _RequestIds:
    """
    Request ids without a system call each: the time in milliseconds, a
    random 32-bit prefix drawn per process (again in a forked child), and a
    counter.
    """

    def __init__(self) -> None:
        self._prefix = ""
        self._counter = itertools.count()
        self._reset()
        # A forked child must not repeat its parent's ids; checking the pid
        # on every call would cost a system call.
        on_fork(self._reset)

    def _reset(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count()

    def __call__(self) -> str:
        count = next(self._counter) & _COUNTER_MASK
        return f"{time.time_ns() // 1_000_000:012x}{self._prefix}{count:012x}"


_COUNTER_MASK = (1 << 48) - 1
_request_ids = _RequestIds()


def new_request_id() -> str:
    """
    Return a new request id: 32 hex digits, unique and roughly time-ordered.

    The first 12 digits are the wall-clock time in milliseconds, the next 8
    are random per process (drawn again in a forked child) and the last 12
    count the ids the process made. Ids are unique across processes and
    restarts, ids of one process sort in the order they were made (while the
    clock does not step back), and ids
    made one after another sort together, so a store's request-id index
    grows at its end instead of rewriting pages all over (for LMDB that is
    several times faster). The time here only orders ids; record timestamps
    come from the meter's clock. It makes no system call. This is the one
    generator of request ids: billing records and the HTTP layer (its
    ``x-request-id`` header) both use it.

    .. versionadded:: 0.1.0
    """
    return _request_ids()


def _utc(ts: datetime) -> datetime:
    if not isinstance(ts, datetime):
        msg = f"timestamps must be datetime objects, not {type(ts).__name__}"
        raise InvalidConfigError(msg, field="timestamp")
    if ts.tzinfo is timezone.utc:
        return ts
    if ts.tzinfo is None:
        msg = "timestamps must be timezone-aware (UTC)"
        raise InvalidConfigError(msg, field="timestamp")
    return ts.astimezone(timezone.utc)


def _utf8_size(value: str) -> int:
    # The size in UTF-8, or -1 if the text cannot be encoded (lone surrogates).
    if value.isascii():
        return len(value)
    try:
        return len(value.encode())
    except UnicodeEncodeError:
        return -1


def _visible_ascii(text: str, limit: int) -> bool:
    # 1 to *limit* printable ASCII characters, no space.
    return (
        0 < len(text) <= limit
        and text.isascii()
        and text.isprintable()
        and " " not in text
    )


def billable_model(model: str) -> str:
    """
    Return *model* as billing records can hold it: lone surrogates (which
    JSON escapes can carry) replaced by U+FFFD, cut to `MAX_MODEL_LENGTH`
    characters.

    A request naming a model no record could hold is still billed, under
    this name.

    .. versionadded:: 0.1.0
    """
    clean = model.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return clean[:MAX_MODEL_LENGTH]


def _check_record(record: BillingRecord) -> None:
    _check_fields(
        record.tenant_id,
        record.input_tokens,
        record.output_tokens,
        record.model,
        record.request_id,
    )
    _check_money(record.cost, record.currency, record.key_id)


def _check_money(cost: object, currency: object, key_id: object) -> None:
    # The cost, its currency and the key id; the common case (no price, no
    # key id) costs three comparisons.
    if type(cost) is not int or not 0 <= cost <= MAX_COST:
        msg = (
            f"cost must be an integer of micro-units from 0 to {MAX_COST}, not {cost!r}"
        )
        raise InvalidConfigError(msg, field="cost")
    if currency != "" and (
        type(currency) is not str
        or len(currency) != 3  # noqa: PLR2004 - an ISO 4217 code
        or not currency.isascii()
        or not currency.isupper()
        or not currency.isalpha()
    ):
        msg = f"currency must be an ISO 4217 code such as 'USD' or empty, not {currency!r}"
        raise InvalidConfigError(msg, field="currency")
    if cost and not currency:
        msg = "a record with a cost needs its currency"
        raise InvalidConfigError(msg, field="currency")
    if key_id != "" and (
        type(key_id) is not str or not _visible_ascii(key_id, MAX_KEY_ID_LENGTH)
    ):
        msg = (
            f"key_id must be empty or 1 to {MAX_KEY_ID_LENGTH} visible ASCII "
            f"characters, not {key_id!r}"
        )
        raise InvalidConfigError(msg, field="key_id")


def _check_fields(
    tenant_id: object,
    input_tokens: object,
    output_tokens: object,
    model: object,
    request_id: object,
) -> None:
    # One function instead of one validator per field: records are made on
    # every request, so this is on the hot path.
    if (
        type(tenant_id) is not str
        or not 0 < _utf8_size(tenant_id) <= MAX_TENANT_ID_BYTES
    ):
        msg = (
            f"tenant_id must be 1 to {MAX_TENANT_ID_BYTES} bytes of valid UTF-8 "
            f"text, not {tenant_id!r}"
        )
        raise InvalidConfigError(msg, field="tenant_id")
    for name, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
    ):
        if type(value) is not int or not 0 <= value <= MAX_TOKENS:
            msg = f"{name} must be an integer from 0 to {MAX_TOKENS}, not {value!r}"
            raise InvalidConfigError(msg, field=name)
    if type(model) is not str or len(model) > MAX_MODEL_LENGTH or _utf8_size(model) < 0:
        msg = f"model must be valid text of at most {MAX_MODEL_LENGTH} characters"
        raise InvalidConfigError(msg, field="model")
    if type(request_id) is not str or not _visible_ascii(
        request_id, MAX_REQUEST_ID_LENGTH
    ):
        msg = (
            f"request_id must be 1 to {MAX_REQUEST_ID_LENGTH} visible ASCII "
            f"characters, not {request_id!r}"
        )
        raise InvalidConfigError(msg, field="request_id")


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds")


@attrs.frozen
class BillingRecord:
    """
    The token use of one request.

    Every field is checked when the record is made: a record that exists can
    be stored by every store.

    Attributes:
        tenant_id: who is billed; 1 to `MAX_TENANT_ID_BYTES` bytes of UTF-8.
        input_tokens: prompt tokens, 0 to `MAX_TOKENS`.
        output_tokens: completion tokens, 0 to `MAX_TOKENS`.
        timestamp: when the request finished (aware; kept in UTC, to the
            microsecond).
        model: the model used ("" when unknown), at most `MAX_MODEL_LENGTH`
            characters.
        request_id: unique per request, 1 to `MAX_REQUEST_ID_LENGTH` visible
            ASCII characters; a store keeps one record per id.
        cost: what the request cost, in micro-units of *currency*
            (0 to `MAX_COST`), computed once when the record was made, at
            the price in force at *timestamp*; never recomputed. 0 with no
            currency: the request was not priced (records made without a
            price table, or before costs were recorded).
        currency: the ISO 4217 code of *cost* (three capitals), or ``""``
            when the record was not priced; a record with a cost has one.
        key_id: the id of the API key that made the request (``""`` when
            unknown), at most `MAX_KEY_ID_LENGTH` visible ASCII characters.

    Raises:
        InvalidConfigError: a field is out of range (``field`` names it).

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    input_tokens: int
    output_tokens: int
    timestamp: datetime = attrs.field(converter=_utc)
    model: str = ""
    request_id: str = attrs.field(factory=new_request_id)
    cost: int = 0
    currency: str = ""
    key_id: str = ""

    def __attrs_post_init__(self) -> None:
        _check_record(self)

    @property
    def total_tokens(self) -> int:
        """
        Input plus output tokens.
        """
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        """
        Return the record as JSON-ready data; the timestamp in ISO 8601 form.
        """
        return {
            "timestamp": _iso(self.timestamp),
            "tenant_id": self.tenant_id,
            "request_id": self.request_id,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "currency": self.currency,
            "key_id": self.key_id,
        }


@attrs.frozen
class UsageSummary:
    """
    Token totals of one group of billing records (one row of a usage report).

    *model* is ``None`` unless the summary was grouped by model, *day* (a
    UTC date) ``None`` unless it was grouped by day. *cost* is the sum of
    the records' stored costs, in micro-units of *currency*: records are
    always grouped by currency too, so a total never adds two currencies,
    and records made without a price (``currency`` ``""``, cost 0) total
    apart from priced ones.

    .. versionadded:: 0.1.0
    """

    model: str | None
    day: date | None
    input_tokens: int
    output_tokens: int
    requests: int
    cost: int = 0
    currency: str = ""

    @property
    def total_tokens(self) -> int:
        """
        Input plus output tokens.
        """
        return self.input_tokens + self.output_tokens


def _check_by(by: str | Sequence[str]) -> tuple[str, ...]:
    keys = (by,) if isinstance(by, str) else tuple(by)
    if any(k not in SUMMARY_KEYS for k in keys) or len(set(keys)) != len(keys):
        msg = f"by must name each of {SUMMARY_KEYS} at most once, not {by!r}"
        raise InvalidConfigError(msg, field="by")
    return keys


def summary_rows(
    totals: Mapping[tuple[Any, ...], Sequence[int]],
) -> list[UsageSummary]:
    """
    Turn ``{(model, day, currency): (input, output, requests, cost)}`` into
    sorted summary rows. Keys of ``(model, day)`` alone mean no currency,
    totals without a cost mean cost 0 (the form of stores that keep no
    cost).

    Rows are ordered by day, then model, then currency. For store
    implementers: a store's ``summary`` method may aggregate its own way and
    build its rows here.

    .. versionadded:: 0.1.0
    """
    rows = [
        UsageSummary(
            key[0],
            key[1],
            int(t[0]),
            int(t[1]),
            int(t[2]),
            int(t[3]) if len(t) > 3 else 0,  # noqa: PLR2004 - the cost's place
            key[2] if len(key) > 2 else "",  # noqa: PLR2004 - the currency's place
        )
        for key, t in totals.items()
    ]
    rows.sort(key=lambda r: (r.day or date.min, r.model or "", r.currency))
    return rows


def summarize(
    records: Iterable[BillingRecord], by: str | Sequence[str] = SUMMARY_KEYS
) -> list[UsageSummary]:
    """
    Total *records* by model and/or UTC day (and always by currency: see
    `UsageSummary`).

    Args:
        records: the billing records to total.
        by: ``"model"``, ``"day"``, both, or ``()`` for one grand total.

    Returns:
        One row per group that has records, ordered by day, then model;
        no rows if *records* is empty.

    Raises:
        InvalidConfigError: *by* names something else, or a key twice.

    .. versionadded:: 0.1.0
    """
    keys = _check_by(by)
    by_model = "model" in keys
    by_day = "day" in keys
    totals: dict[tuple[str | None, date | None, str], list[int]] = {}
    for r in records:
        key = (
            r.model if by_model else None,
            r.timestamp.date() if by_day else None,
            r.currency,
        )
        t = totals.get(key)
        if t is None:
            totals[key] = [r.input_tokens, r.output_tokens, 1, r.cost]
        else:
            t[0] += r.input_tokens
            t[1] += r.output_tokens
            t[2] += 1
            t[3] += r.cost
    return summary_rows(totals)
