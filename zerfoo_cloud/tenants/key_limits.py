"""
An API key's own limits at admission: the buckets and the slot a request
made with a limited key takes beside its tenant's.

A key's requests per minute, tokens per minute and requests in flight
(`zerfoo_cloud.KeyRecord.rate_limit`, ``token_budget``,
``max_concurrent_requests``) are counted in buckets and a slot named under
the tenant's group (``<tenant>\\x00key\\x00<key id>\\x00req``), so a
tenant's and its key's counters share one Redis hash tag and one
`LimiterStore.admit` takes them all, or none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud.limits import Decision, Rate

if TYPE_CHECKING:
    from zerfoo_cloud.key_records import KeyRecord

__all__ = ["KeyLimits", "tighter"]

#: The period of a key's ``rate_limit`` and ``token_budget``: one minute.
_PERIOD = 60.0


@attrs.frozen
class KeyLimits:
    """
    The counters of one API key's own limits (`KeyLimits.of` a key).

    Attributes:
        req_key, tok_key, con_key: the key's request bucket, token bucket
            and slot key in the limiter store.
        req_rate, tok_rate: the rates of its buckets, ``None`` when the key
            has no limit of its own there.
        max_concurrent: its requests in flight, 0 for no limit of its own.

    .. versionadded:: 0.1.0
    """

    req_key: str
    tok_key: str
    con_key: str
    req_rate: Rate | None
    tok_rate: Rate | None
    max_concurrent: int

    @classmethod
    def of(cls, tenant_id: str, key: KeyRecord | None) -> KeyLimits | None:
        """
        The counters of *key* (a key of tenant *tenant_id*), or ``None``
        when there is no key or it has no limit of its own.
        """
        if key is None or not (
            key.rate_limit or key.token_budget or key.max_concurrent_requests
        ):
            return None
        base = f"{tenant_id}\x00key\x00{key.id}\x00"
        return cls(
            base + "req",
            base + "tok",
            base + "con",
            Rate(key.rate_limit, _PERIOD) if key.rate_limit else None,
            Rate(key.token_budget, _PERIOD) if key.token_budget else None,
            key.max_concurrent_requests,
        )

    def asks(self, tokens: int) -> list[tuple[str, Rate, int]]:
        """
        The buckets one request of *tokens* tokens takes from the key.
        """
        asks: list[tuple[str, Rate, int]] = []
        if self.req_rate is not None:
            asks.append((self.req_key, self.req_rate, 1))
        if self.tok_rate is not None:
            asks.append((self.tok_key, self.tok_rate, tokens))
        return asks

    def tokens(self, delta: int) -> list[tuple[str, Rate, int]]:
        """
        The key's token bucket given *delta* tokens back (or charged), if
        it has one.
        """
        rate = self.tok_rate
        return [] if rate is None or not delta else [(self.tok_key, rate, delta)]

    def slot(self) -> tuple[str, int] | None:
        """
        The key's concurrency slot, if it limits requests in flight.
        """
        limit = self.max_concurrent
        return (self.con_key, limit) if limit else None


def tighter(a: Decision | None, b: Decision | None) -> Decision | None:
    """
    Of two decisions on the same quota (a tenant's and its key's), the one
    to report: a refusal before a grant (of two refusals, the longer
    wait), else the one with fewer units left (of equals, the later reset).
    ``None`` (no limit) loses to any decision.
    """
    if a is None:
        return b
    if b is None:
        return a
    if a.allowed != b.allowed:
        return b if a.allowed else a
    if not a.allowed:
        return a if a.retry_after >= b.retry_after else b
    if a.remaining != b.remaining:
        return a if a.remaining < b.remaining else b
    return a if a.reset_after >= b.reset_after else b
