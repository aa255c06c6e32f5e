"""
The bounded label values of the metrics: the fixed sets (`RESULTS`,
`LIMITS`), the stand-ins (`UNKNOWN`, `OTHER`, `TENANTS_HIDDEN`) and
`LabelCap`, which keeps hostile tenant or model names from growing memory or
the scrape without bound.
"""

from __future__ import annotations

import threading

from zerfoo_cloud.errors import InvalidConfigError

__all__ = [
    "LIMITS",
    "MAX_LABEL_LENGTH",
    "OTHER",
    "RESULTS",
    "TENANTS_HIDDEN",
    "UNKNOWN",
    "LabelCap",
    "fixed_label",
]

#: The ``result`` label values of ``requests_total`` and ``request_duration_seconds``.
RESULTS: frozenset[str] = frozenset(
    {"success", "denied", "rate_limited", "error", "unauthorized"}
)

#: The ``limit`` label values of ``limiter_rejections_total``.
LIMITS: frozenset[str] = frozenset(
    {"requests", "tokens", "concurrency", "model", "body_size", "budget"}
)

#: The label value of a missing or empty tenant or model.
UNKNOWN = "unknown"

#: The label value that stands for every model (or tenant) past the cap.
OTHER = "other"

#: The ``tenant`` label value of every request when tenant labels are off.
TENANTS_HIDDEN = "all"

#: Longer label values are cut to this many characters.
MAX_LABEL_LENGTH = 64


class LabelCap:
    """
    Maps raw label values to bounded ones: at most *limit* distinct values,
    each at most `MAX_LABEL_LENGTH` characters and valid UTF-8.
    """

    __slots__ = ("_limit", "_lock", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None, *, admit: bool = True) -> str:
        """
        Return the label for *value*; a new value takes a free place only
        when *admit* is true.
        """
        if not value:
            return UNKNOWN
        value = str.__str__(value)[:MAX_LABEL_LENGTH]
        if not value.isascii():
            # Lone surrogates (JSON allows "\ud800") would make every later
            # scrape fail to encode; replace them once, here.
            value = value.encode("utf-8", "replace").decode("utf-8")
        if value in self._seen:
            return value
        if not admit:
            return OTHER
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
            return value


def fixed_label(value: str, allowed: frozenset[str], field: str) -> str:
    """
    Return *value* as a plain ``str`` if it is one of *allowed*.

    Raises:
        InvalidConfigError: *value* is not allowed.
    """
    if value not in allowed:
        msg = f"{field} must be one of {', '.join(sorted(allowed))}, not {value!r}"
        raise InvalidConfigError(msg, field=field)
    return str.__str__(value)
