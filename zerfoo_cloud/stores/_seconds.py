"""
The check of an interval option of a store (a probe interval, a backoff):
a positive, finite number of seconds.
"""

from __future__ import annotations

from zerfoo_cloud.errors import InvalidConfigError

__all__ = ["check_seconds"]

#: The longest interval accepted, in seconds (about eleven days).
_MAX_SECONDS = 1e6


def check_seconds(name: str, value: object) -> float:
    """
    Return *value* as seconds: a number (not a bool) above 0 and below
    about eleven days.

    Raises:
        InvalidConfigError: it is not one (``field`` is *name*).
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < _MAX_SECONDS
    ):
        msg = f"{name} must be a positive number of seconds, not {value!r}"
        raise InvalidConfigError(msg, field=name)
    return float(value)
