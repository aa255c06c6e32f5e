"""
`RetryPolicy`: when a failed delivery is tried again, and when it gives up.
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from zerfoo_cloud.errors import InvalidConfigError

__all__ = ["RetryPolicy"]


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        msg = f"{attribute.name} must be a positive number, not {value!r}"
        raise InvalidConfigError(msg, field=attribute.name)


@attrs.frozen
class RetryPolicy:
    """
    Exponential backoff with jitter and a cap, and the limits after which
    a delivery becomes a dead letter.

    Attempt *n* (1 for the first) that fails is retried after
    ``min(max_delay, first_delay * 2 ** (n - 1))`` seconds times a random
    factor from 0.5 to 1 (so that many failed deliveries do not all come
    back at once). A delivery gives up after *max_attempts* attempts, or
    once *max_age* seconds passed since it was queued (whichever comes
    first). Each attempt waits at most *timeout* seconds for the receiver
    (connecting, sending and each read).

    The defaults: 5 s, doubling to at most 1 h, 15 attempts, 3 days, 10 s
    timeout (about 8 hours of tries).

    Raises:
        InvalidConfigError: a value is not positive, or *first_delay* is
            above *max_delay*.

    .. versionadded:: 0.1.0
    """

    first_delay: float = attrs.field(default=5.0, validator=_positive)
    max_delay: float = attrs.field(default=3600.0, validator=_positive)
    max_attempts: int = attrs.field(default=15, validator=_positive)
    max_age: float = attrs.field(default=3 * 86400.0, validator=_positive)
    timeout: float = attrs.field(default=10.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.first_delay > self.max_delay:
            msg = f"first_delay ({self.first_delay}) must not be above max_delay ({self.max_delay})"
            raise InvalidConfigError(msg, field="first_delay")
        if isinstance(self.max_attempts, float):
            msg = f"max_attempts must be an integer, not {self.max_attempts!r}"
            raise InvalidConfigError(msg, field="max_attempts")

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """
        Seconds to wait after the *attempts*-th failed attempt.
        """
        base = min(self.max_delay, self.first_delay * 2.0 ** min(attempts - 1, 64))
        return base * (rng or random).uniform(0.5, 1.0)

    def gives_up(self, attempts: int, queued_at: float, now: float) -> bool:
        """
        Whether a delivery queued at *queued_at* that failed *attempts*
        times is a dead letter at *now*.
        """
        return attempts >= self.max_attempts or now - queued_at >= self.max_age
