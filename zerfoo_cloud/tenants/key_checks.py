"""
Checks of an API key's settings: its name, its expiry, a rotation's grace,
its own limits.

Each check returns the value it accepted (or raises `InvalidConfigError`
naming the field), so the manager builds key records from checked values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.key_records import KEY_LIMITS, MAX_KEY_NAME_LENGTH
from zerfoo_cloud.tenants.validation import check_limit

if TYPE_CHECKING:
    from zerfoo_cloud.tenant_records import TenantRecord

__all__ = [
    "KEY_NAME_PATTERN",
    "MAX_GRACE",
    "MAX_KEY_LIFETIME",
    "check_expiry",
    "check_grace",
    "check_key_limits",
    "check_key_name",
    "check_within_tenant",
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


def check_key_limits(limits: Mapping[str, object]) -> dict[str, int]:
    """
    Return *limits* (some of `KEY_LIMITS` by name, ``None`` for those left
    as they are, which are dropped) if each is an integer from 0 (no limit
    of the key's own) to `zerfoo_cloud.limits.MAX_LIMIT`.

    Raises:
        InvalidConfigError: a value is not, or a name is not one of
            `KEY_LIMITS` (field: the name).
    """
    checked = {}
    for name, value in limits.items():
        if name not in KEY_LIMITS:
            msg = f"a key has no limit {name[:40]!r}"
            raise InvalidConfigError(msg, field=name)
        if value is not None:
            checked[name] = check_limit(name, value)
    return checked


def check_within_tenant(record: TenantRecord, limits: Mapping[str, int]) -> None:
    """
    Accept a key's own *limits* (`check_key_limits`) if each lies within
    the tenant's: not above it where the tenant has a limit (a tenant limit
    of 0 is none, and any key limit lies within it).

    Raises:
        InvalidConfigError: one is above the tenant's (field: its name).
    """
    for name, value in limits.items():
        ceiling = getattr(record, name)
        if ceiling and value > ceiling:
            msg = (
                f"{name} of a key must lie within the tenant's ({ceiling}), not {value}"
            )
            raise InvalidConfigError(msg, field=name)
