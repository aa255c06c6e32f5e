"""
Checks of a tenant's settings: the id, the key, the limits, the allow list.

Each check returns the value it accepted (or raises `InvalidConfigError`
naming the field), so the manager builds a record from checked values only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from zerfoo_cloud._field_limits import MAX_MODEL_LENGTH
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.limits import MAX_LIMIT

__all__ = [
    "MAX_ALLOW_LIST",
    "MAX_MODEL_NAME",
    "TENANT_ID_PATTERN",
    "check_id",
    "check_key",
    "check_limit",
    "check_models",
    "check_units",
]

#: Tenant ids: 1 to 128 letters, digits and ``. _ - : @``, starting with a
#: letter or digit. They appear in URLs, store keys and metric labels.
TENANT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
#: Model names in allow lists: at most this many characters (the name
#: `MAX_MODEL_LENGTH` has everywhere else, kept for callers of this one).
MAX_MODEL_NAME = MAX_MODEL_LENGTH
#: At most this many models in one allow list.
MAX_ALLOW_LIST = 1024


def check_units(n: int) -> None:
    """
    Accept a token count: a non-negative integer (not a bool).

    Raises:
        InvalidConfigError: *n* is not one (field ``tokens``).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        msg = f"a token count must be an integer, not {n!r}"
        raise InvalidConfigError(msg, field="tokens")
    if n < 0:
        msg = f"a token count must not be negative, not {n}"
        raise InvalidConfigError(msg, field="tokens")


def check_limit(name: str, value: object) -> int:
    """
    Return *value*, a limit named *name*: an integer from 0 (unlimited) to
    `MAX_LIMIT`.

    Raises:
        InvalidConfigError: it is not one (field *name*).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an integer, not {value!r}"
        raise InvalidConfigError(msg, field=name)
    if not 0 <= value <= MAX_LIMIT:
        msg = f"{name} must be between 0 (unlimited) and {MAX_LIMIT}, not {value}"
        raise InvalidConfigError(msg, field=name)
    return value


def check_id(tenant_id: object) -> str:
    """
    Return *tenant_id* if it matches `TENANT_ID_PATTERN`.

    Raises:
        InvalidConfigError: it does not (field ``id``).
    """
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.fullmatch(tenant_id):
        msg = (
            f"tenant id {tenant_id!r} is invalid: use 1 to 128 letters, digits "
            "and . _ - : @, starting with a letter or digit"
        )
        raise InvalidConfigError(msg, field="id")
    return tenant_id


def check_key(api_key: object) -> str:
    """
    Return *api_key* if it is a non-empty string without spaces at its ends
    or control characters (CR, LF, NUL).

    Raises:
        InvalidConfigError: it is not (field ``api_key``; the message never
            shows the key).
    """
    if not isinstance(api_key, str) or not api_key:
        msg = "the API key must be a non-empty string"
        raise InvalidConfigError(msg, field="api_key")
    if api_key != api_key.strip() or any(c in api_key for c in "\r\n\x00"):
        msg = "the API key must not contain spaces at its ends or control characters"
        raise InvalidConfigError(msg, field="api_key")
    return api_key


def check_models(models: object) -> tuple[str, ...]:
    """
    Return the allow list *models* as a tuple, duplicates dropped, order kept.

    Raises:
        InvalidConfigError: it is a string or not iterable, holds more than
            `MAX_ALLOW_LIST` models, or a name that is not 1 to
            `MAX_MODEL_LENGTH` characters (field ``model_allow_list``).
    """
    if isinstance(models, str) or not isinstance(models, Iterable):
        msg = "model_allow_list must be a list of model names"
        raise InvalidConfigError(msg, field="model_allow_list")
    result = tuple(models)
    if len(result) > MAX_ALLOW_LIST:
        msg = (
            f"model_allow_list holds at most {MAX_ALLOW_LIST} models, not {len(result)}"
        )
        raise InvalidConfigError(msg, field="model_allow_list")
    for m in result:
        if not isinstance(m, str) or not 0 < len(m) <= MAX_MODEL_LENGTH:
            msg = f"model names must be 1 to {MAX_MODEL_LENGTH} characters, not {m!r}"
            raise InvalidConfigError(msg, field="model_allow_list")
    return tuple(dict.fromkeys(result))
