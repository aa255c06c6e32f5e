"""
Checks of an API key's settings: its name, its expiry, a rotation's grace.

Each check returns the value it accepted (or raises `InvalidConfigError`
naming the field), so the manager builds key records from checked values.
"""

from __future__ import annotations

import math
import re

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.key_records import MAX_KEY_NAME_LENGTH

__all__ = [
    "KEY_NAME_PATTERN",
    "MAX_GRACE",
    "MAX_KEY_LIFETIME",
    "check_expiry",
    "check_grace",
    "check_key_name",
]

#: What a key name is: visible ASCII and spaces, no space at its ends.
KEY_NAME_PATTERN = re.compile(
    r"[!-~](?:[ -~]{0,%d}[!-~])?" % (MAX_KEY_NAME_LENGTH - 2)  # noqa: UP031
)
#: The furthest expiry of a key: 100 years (36,525 days) after it is set.
MAX_KEY_LIFETIME = 36_525 * 86_400.0
#: The longest grace of a rotation: 30 days.
MAX_GRACE = 30 * 86_400.0


def check_key_name(name: object) -> str:
    """
    Return *name* if it is 1 to `MAX_KEY_NAME_LENGTH` visible ASCII
    characters and spaces, with no space at its ends (`KEY_NAME_PATTERN`):
    names show in tables, logs and audit entries, so they hold no control
    characters and nothing that looks like another character.

    Raises:
        InvalidConfigError: it is not (field ``name``).
    """
    if not isinstance(name, str) or not KEY_NAME_PATTERN.fullmatch(name):
        shown = repr(name)[:60]
        msg = (
            f"a key name must be 1 to {MAX_KEY_NAME_LENGTH} visible ASCII "
            f"characters or spaces, not starting or ending with a space, not {shown}"
        )
        raise InvalidConfigError(msg, field="name")
    return name


def check_expiry(expires_at: object, now: float) -> float | None:
    """
    Return *expires_at* (Unix seconds) if it is ``None`` or a finite time
    after *now* and at most `MAX_KEY_LIFETIME` after it.

    Raises:
        InvalidConfigError: it is not (field ``expires_at``).
    """
    if expires_at is None:
        return None
    if (
        isinstance(expires_at, bool)
        or not isinstance(expires_at, (int, float))
        or not math.isfinite(expires_at)
        or not now < expires_at <= now + MAX_KEY_LIFETIME
    ):
        msg = (
            "expires_at must be a time in the future, at most "
            f"{int(MAX_KEY_LIFETIME // 86_400)} days away, not {expires_at!r}"
        )
        raise InvalidConfigError(msg, field="expires_at")
    return float(expires_at)


def check_grace(grace: object) -> float:
    """
    Return *grace* (seconds) if it is a finite number from 0 to `MAX_GRACE`.

    Raises:
        InvalidConfigError: it is not (field ``grace``).
    """
    if (
        isinstance(grace, bool)
        or not isinstance(grace, (int, float))
        or not math.isfinite(grace)
        or not 0 <= grace <= MAX_GRACE
    ):
        msg = f"grace must be 0 to {int(MAX_GRACE)} seconds (30 days), not {grace!r}"
        raise InvalidConfigError(msg, field="grace")
    return float(grace)
