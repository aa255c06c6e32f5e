"""
The query parameters and JSON fields of admin calls: time ranges, grouping,
limits and the fields of a tenant, each checked into an `HTTPProblem`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from zerfoo_cloud.http.admin._responses import HTTPProblem
from zerfoo_cloud.metering import SUMMARY_KEYS

__all__ = [
    "DEFAULT_AUDIT_LIMIT",
    "DEFAULT_USAGE_DAYS",
    "EPOCH",
    "MAX_AUDIT_LIMIT",
    "audit_limit",
    "check_fields",
    "clip",
    "group_by",
    "int_field",
    "models_field",
    "time_range",
]

#: Usage and audit queries without ``since`` cover this many days.
DEFAULT_USAGE_DAYS = 30
#: Audit queries return this many entries unless ``limit`` says otherwise.
DEFAULT_AUDIT_LIMIT = 100
#: The largest ``limit`` of an audit query.
MAX_AUDIT_LIMIT = 1000
#: The earliest time a store keeps (it keys records by Unix time).
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_MESSAGE = 400


def clip(message: str) -> str:
    """
    *message*, cut to at most 400 characters.
    """
    return (
        message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"
    )


def check_fields(
    data: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str] = ()
) -> None:
    """
    Refuse (400) a field not in *allowed* or a missing *required* one.
    """
    known = tuple(allowed)
    for name in data:
        if name not in known:
            msg = f"unknown field {clip(name)!r}; known: {', '.join(known)}"
            raise HTTPProblem(400, "unknown_field", msg, param=clip(name))
    for name in required:
        if name not in data:
            msg = f"the field {name!r} is required"
            raise HTTPProblem(400, "missing_field", msg, param=name)


def int_field(data: Mapping[str, Any], name: str) -> int:
    """
    The integer field *name* (``5.0`` counts as ``5``); 400 otherwise.
    """
    value = data[name]
    if isinstance(value, float) and value.is_integer():
        # JSON has one number type: 5.0 is the integer 5.
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an integer"
        raise HTTPProblem(400, "invalid_field", msg, param=name)
    return value


def models_field(data: Mapping[str, Any]) -> list[str]:
    """
    The ``model_allow_list`` field, a list of strings; 400 otherwise.
    """
    value = data["model_allow_list"]
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        msg = "model_allow_list must be a list of model names"
        raise HTTPProblem(400, "invalid_field", msg, param="model_allow_list")
    return value


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,32}))?)?)?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)
_FAR = datetime.max.replace(tzinfo=timezone.utc)


def _parse_time(params: Mapping[str, str], name: str) -> datetime | None:
    """
    Read an RFC 3339 / ISO 8601 time; no offset means UTC, no time midnight.
    """
    text = params.get(name)
    if text is None:
        return None
    found = _RFC3339.fullmatch(text)
    msg = f"{name} must be an ISO 8601 time such as 2025-01-31T00:00:00Z"
    if found is None:
        raise HTTPProblem(400, "invalid_parameter", msg, param=name)
    year, month, day, hour, minute, second, fraction, _, sign, oh, om = found.groups()
    try:
        offset = timezone(
            timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
            if sign
            else timedelta(0)
        )
        moment = datetime(
            max(int(year), 1),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            min(int(second or 0), 59),  # a leap second counts as :59
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=offset,
        )
    except ValueError:
        raise HTTPProblem(400, "invalid_parameter", msg, param=name) from None
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        # Only the first and the last day of the calendar get here.
        return EPOCH if moment.year < EPOCH.year else _FAR


def time_range(params: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    """
    The ``since``/``until`` range of a query: ``until`` defaults to *now*,
    ``since`` to `DEFAULT_USAGE_DAYS` before it; neither before the epoch.
    """
    until = _parse_time(params, "until") or now
    since = _parse_time(params, "since")
    # Stores key records by Unix time: nothing is older than the epoch.
    until = max(until, EPOCH)
    if since is None:
        since = until - timedelta(days=DEFAULT_USAGE_DAYS)
    # A range that ends before it starts is empty, not an error.
    return max(since, EPOCH), until


def group_by(params: Mapping[str, str]) -> tuple[str, ...]:
    """
    The ``by`` keys of a usage query (default: model and day); 400 for others.
    """
    text = params.get("by", ",".join(SUMMARY_KEYS))
    keys = tuple(text.split(",")) if text else ()
    if any(k not in SUMMARY_KEYS for k in keys) or len(set(keys)) != len(keys):
        msg = "by must list model and/or day, comma-separated, each at most once (or be empty)"
        raise HTTPProblem(400, "invalid_parameter", msg, param="by")
    return keys


def audit_limit(params: Mapping[str, str]) -> int:
    """
    The ``limit`` of an audit query, 1 to `MAX_AUDIT_LIMIT`; 400 otherwise.
    """
    text = params.get("limit", str(DEFAULT_AUDIT_LIMIT))
    if not (text.isdigit() and text.isascii()) or not 1 <= int(text) <= MAX_AUDIT_LIMIT:
        msg = f"limit must be an integer from 1 to {MAX_AUDIT_LIMIT}"
        raise HTTPProblem(400, "invalid_parameter", msg, param="limit")
    return int(text)
