"""
`Stores`: one store per role, from the records backend and the counters
backend, closed together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._closing import ClosedOnExit
from zerfoo_cloud.stores.memory import MemoryPriceStore
from zerfoo_cloud.stores.protocols import (
    AuditStore,
    BillingStore,
    LimiterStore,
    PriceStore,
    ReplayCache,
    TenantStore,
)

if TYPE_CHECKING:
    pass

__all__ = ["Stores"]

#: The key the readiness checks read: no tenant or bucket can have it.
PROBE_KEY = "\x00readiness-probe"


class Stores(ClosedOnExit):
    """
    The stores of a service: records (`tenants`, `billing`, `audit`) from
    one backend, counters (`limits`, `replay`) from another or the same.

    Made by `zerfoo_cloud.stores.open.open_stores`. `close` (or leaving a
    ``with`` block) closes every backend it opened, each once, however many
    roles it serves; calling it again does nothing. The stores stop working
    once closed.

    Attributes:
        tenants: tenant records and key hashes (`TenantStore`).
        limits: rate-limit buckets and concurrency slots (`LimiterStore`).
        billing: billing records (`BillingStore`).
        audit: the audit chain (`AuditStore`).
        replay: SAML assertion ids seen (`ReplayCache`).
        prices: the price table every host prices with (`PriceStore`),
            from the records backend (a `MemoryPriceStore` of its own when
            none is given).
        revocations: the channel that tells every host of a fleet of a
            revoked key, or ``None`` (hosts then rely on the tenant cache's
            TTL).
        outbox: the local outbox `billing` and `audit` write through while
            the records database cannot be reached
            (`zerfoo_cloud.stores.outbox.Outbox`), or ``None``.
        records_url: the records URL, its password replaced by ``***``.
        counters_url: the counters URL (the records URL when the records
            backend holds the counters), its password replaced by ``***``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        tenants: TenantStore,
        limits: LimiterStore,
        billing: BillingStore,
        audit: AuditStore,
        replay: ReplayCache,
        records_url: str,
        counters_url: str,
        closers: Sequence[Callable[[], Any]] = (),
        revocations: Any = None,
        outbox: Any = None,
        prices: PriceStore | None = None,
    ) -> None:
        self.tenants = tenants
        self.limits = limits
        self.billing = billing
        self.audit = audit
        self.replay = replay
        self.prices: PriceStore = MemoryPriceStore() if prices is None else prices
        self.revocations = revocations
        self.outbox = outbox
        self.records_url = records_url
        self.counters_url = counters_url
        self._closers = list(closers)
        self._lock = threading.Lock()
        self._closed = False

    def check_records(self) -> None:
        """
        Read one tenant record: returns when the records backend answers.

        Raises:
            StoreError: it cannot be reached or read.
        """
        self.tenants.get(PROBE_KEY)

    def check_counters(self) -> None:
        """
        Read one bucket: returns when the counters backend answers.

        Raises:
            StoreError: it cannot be reached or read (Redis down, say).
        """
        self.limits.get(PROBE_KEY)

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def close(self) -> None:
        """
        Close every backend this set opened, last opened first, each once.
        Calling it again does nothing. A failing close does not keep the
        others from closing; the first failure is raised after them.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            closers, self._closers = self._closers, []
        failure: BaseException | None = None
        for close in reversed(closers):
            try:
                close()
            except Exception as exc:  # noqa: BLE001, PERF203 - close the rest first
                failure = failure or exc
        if failure is not None:
            raise failure

    def __repr__(self) -> str:
        return f"Stores(records={self.records_url!r}, counters={self.counters_url!r})"
