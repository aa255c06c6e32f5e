"""
Argument checks shared by the `ResourceManager` methods.
"""

from __future__ import annotations

import math
import time

from zerfoo_cloud.errors import InvalidConfigError

__all__ = ["check_count", "check_model_id", "deadline"]


def check_model_id(model_id: object) -> str:
    """
    Return *model_id* if it is a non-empty string.

    Raises:
        InvalidConfigError: it is not.
    """
    if not isinstance(model_id, str) or not model_id:
        msg = f"a model id must be a non-empty string, not {model_id!r}"
        raise InvalidConfigError(msg, field="model_id")
    return model_id


def check_count(value: object, field: str) -> int:
    """
    Return *value* if it is an integer >= 0 (not a bool).

    Raises:
        InvalidConfigError: it is not; the error names *field*.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{field} must be an integer >= 0, not {value!r}"
        raise InvalidConfigError(msg, field=field)
    return value


def deadline(timeout: float | None) -> float | None:
    """
    Turn a timeout into a `time.monotonic` deadline; None or 0 mean no wait.

    Raises:
        InvalidConfigError: *timeout* is not None or a finite number >= 0.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not (
        isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout >= 0
    ):
        msg = (
            f"timeout must be None or a finite number of seconds >= 0, not {timeout!r}"
        )
        raise InvalidConfigError(msg, field="timeout")
    return time.monotonic() + timeout if timeout > 0 else None
