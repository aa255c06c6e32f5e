"""
The time window of reports and queries: ``--since`` and ``--until``, in UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.cli._context import F

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


#: Reports cover this many days back when ``--since`` is absent.
DEFAULT_REPORT_DAYS = 30

_TIME_FORMATS = [
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S",
]


def _window(
    since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    """
    Return the aware UTC window ``[since, until]``; naive times are UTC.
    """
    now = datetime.now(timezone.utc)
    end = now if until is None else _aware(until)
    start = (
        end - timedelta(days=DEFAULT_REPORT_DAYS) if since is None else _aware(since)
    )
    if start > end:
        msg = f"--since ({start.isoformat()}) is after --until ({end.isoformat()})"
        raise click.UsageError(msg)
    return start, end


def _aware(ts: datetime) -> datetime:
    return (
        ts.replace(tzinfo=timezone.utc)
        if ts.tzinfo is None
        else ts.astimezone(timezone.utc)
    )


def _window_options(fn: F) -> F:
    fn = click.option(
        "--until",
        type=click.DateTime(_TIME_FORMATS),
        help="Last instant included (UTC unless an offset is given; default: now).",
    )(fn)
    return click.option(
        "--since",
        type=click.DateTime(_TIME_FORMATS),
        help=f"First instant included (default: {DEFAULT_REPORT_DAYS} days before --until).",
    )(fn)
