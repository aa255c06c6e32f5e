"""
The clock type shared by every component.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

__all__ = ["MAX_PLAIN_STAMP", "Clock", "utc_stamp", "wire_stamp"]

#: A function returning the current time in Unix seconds. Wall time, not
#: monotonic time: limiter state is shared between processes and billing needs
#: real timestamps.
Clock = Callable[[], float]

#: Billing records and audit entries queued for a writer process carry their
#: clock reading as a float when it is ``0.0 <= now < MAX_PLAIN_STAMP`` (up
#: to the year 2242), and the writer process makes the datetime
#: (`utc_stamp`): the serving process neither makes nor pickles it. Other
#: readings are made datetimes at once (`wire_stamp`), so that a bad clock
#: fails the caller.
MAX_PLAIN_STAMP = float(2**33)


def wire_stamp(now: float) -> float | datetime:
    """
    Return clock reading *now* as a writer process is sent it: *now* itself
    in the plain range (`MAX_PLAIN_STAMP`), else its aware UTC datetime.

    Raises:
        ValueError: no datetime holds *now* (NaN, out of range).
        OverflowError: as ``datetime.fromtimestamp``.
    """
    if type(now) is float and 0.0 <= now < MAX_PLAIN_STAMP:
        return now
    return datetime.fromtimestamp(now, timezone.utc)


def utc_stamp(stamp: float | datetime) -> datetime:
    """
    Return *stamp* as an aware UTC datetime (a datetime passes unchanged).
    """
    if type(stamp) is float:
        return datetime.fromtimestamp(stamp, timezone.utc)
    assert isinstance(stamp, datetime)
    return stamp
