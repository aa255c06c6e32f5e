"""
The ``x-ratelimit-*`` headers of a quota decision, and `format_duration`,
the way OpenAI writes their reset times.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from zerfoo_cloud.limits import Decision

__all__ = ["format_duration", "rate_limit_header_bytes", "rate_limit_headers"]

H = TypeVar("H", str, bytes)
_MS_PER_SECOND = 1000
_MS_PER_MINUTE = 60_000
_MS_PER_HOUR = 3_600_000


def format_duration(seconds: float) -> str:
    """
    Format *seconds* as OpenAI's rate-limit reset headers do: ``12ms``,
    ``1s``, ``1.5s``, ``6m0s``, ``1h0m0s`` (rounded up to the millisecond).

    .. versionadded:: 0.1.0
    """
    if not (seconds > 0 and math.isfinite(seconds)):
        return "0s"
    ms = math.ceil(seconds * _MS_PER_SECOND - 1e-6)
    if ms < _MS_PER_SECOND:
        return f"{max(ms, 1)}ms"
    hours, rest = divmod(ms, _MS_PER_HOUR)
    minutes, rest = divmod(rest, _MS_PER_MINUTE)
    whole, frac = divmod(rest, _MS_PER_SECOND)
    sec = str(whole) if not frac else f"{whole}.{frac:03d}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{sec}s"
    if minutes:
        return f"{minutes}m{sec}s"
    return f"{sec}s"


_HEADER_NAMES = {
    quota: (
        f"x-ratelimit-limit-{quota}",
        f"x-ratelimit-remaining-{quota}",
        f"x-ratelimit-reset-{quota}",
    )
    for quota in ("requests", "tokens")
}
_HEADER_NAME_BYTES = {
    quota: (limit.encode(), remaining.encode(), reset.encode())
    for quota, (limit, remaining, reset) in _HEADER_NAMES.items()
}


def _quota_headers(
    requests: Decision | None,
    tokens: Decision | None,
    names: dict[str, tuple[H, H, H]],
    number: Callable[[int], H],
    text: Callable[[str], H],
) -> list[tuple[H, H]]:
    headers: list[tuple[H, H]] = []
    for quota, decision in (("requests", requests), ("tokens", tokens)):
        if decision is not None:
            limit, remaining, reset = names[quota]
            headers.append((limit, number(decision.limit)))
            headers.append((remaining, number(decision.remaining)))
            headers.append((reset, text(format_duration(decision.reset_after))))
    return headers


def _text(value: str) -> str:
    return value


def rate_limit_headers(
    requests: Decision | None, tokens: Decision | None
) -> list[tuple[str, str]]:
    """
    Return the ``x-ratelimit-*`` headers for the given quota decisions.

    An unlimited quota (``None``) has no headers.

    .. versionadded:: 0.1.0
    """
    return _quota_headers(requests, tokens, _HEADER_NAMES, str, _text)


def rate_limit_header_bytes(
    requests: Decision | None, tokens: Decision | None
) -> list[tuple[bytes, bytes]]:
    """
    `rate_limit_headers` as ASGI wants them: names and values in bytes.

    .. versionadded:: 0.1.0
    """
    return _quota_headers(
        requests, tokens, _HEADER_NAME_BYTES, b"%d".__mod__, str.encode
    )
