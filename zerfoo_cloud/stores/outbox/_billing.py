"""
`OutboxBillingStore`: a billing store that keeps in a local outbox what its
primary (the records database) cannot take now.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zerfoo_cloud.billing_records import summarize
from zerfoo_cloud.errors import InvalidConfigError, StoreUnavailableError
from zerfoo_cloud.stores.outbox._codec import decode_billing, encode_billing
from zerfoo_cloud.stores.protocols import (
    SummarizingBillingStore,
    TenantListingBillingStore,
)

if TYPE_CHECKING:
    from datetime import datetime

    from zerfoo_cloud.billing_records import BillingRecord, UsageSummary
    from zerfoo_cloud.stores.outbox._outbox import Outbox
    from zerfoo_cloud.stores.protocols import BillingStore

__all__ = ["DEFAULT_DRAIN_BATCH", "OutboxBillingStore"]

#: At most this many records go to the primary in one drained `add`.
DEFAULT_DRAIN_BATCH = 10_000

_log = logging.getLogger("zerfoo_cloud.outbox")


class OutboxBillingStore:
    """
    A `zerfoo_cloud.stores.protocols.SummarizingBillingStore` over a
    *primary* billing store (the shared records database) that loses
    nothing while the primary cannot be reached.

    `add` goes to the primary while the outbox holds no billing records.
    When the primary raises `zerfoo_cloud.errors.StoreUnavailableError`
    (and only then: any other error is raised, and the caller's writer
    keeps the batch as it would without an outbox), the records are written
    to *outbox* in one fsynced transaction and `add` returns as if they
    were stored. While records wait in the outbox, new ones go behind them,
    so they reach the primary in arrival order.

    The outbox's drainer hands the waiting records to ``primary.add`` (up
    to *drain_batch* per call) and deletes them only after it returned.
    Exactly once: the primary keeps one record per request id, so a batch
    sent again after a crash between its commit and its deletion stores
    nothing new.

    Reads (`query`, `summary`, and `tenant_ids` when the primary names
    tenants) go to the primary: records still in the outbox are not
    visible until drained; `pending` says how many wait.

    Over a primary that names its tenants
    (`zerfoo_cloud.stores.protocols.TenantListingBillingStore`) the store
    made is one too.
    """

    kind = "billing"

    def __new__(  # noqa: PYI034 - it may make a subclass
        cls,
        primary: BillingStore,
        outbox: Outbox,
        *,
        drain_batch: int = DEFAULT_DRAIN_BATCH,
    ) -> OutboxBillingStore:
        """
        Make the store; one that names tenants if *primary* does.
        """
        made = cls
        if cls is OutboxBillingStore and isinstance(primary, TenantListingBillingStore):
            made = _TenantListingOutboxBillingStore
        return object.__new__(made)

    def __init__(
        self,
        primary: BillingStore,
        outbox: Outbox,
        *,
        drain_batch: int = DEFAULT_DRAIN_BATCH,
    ) -> None:
        if (
            isinstance(drain_batch, bool)
            or not isinstance(drain_batch, int)
            or drain_batch < 1
        ):
            msg = f"drain_batch must be a positive integer, not {drain_batch!r}"
            raise InvalidConfigError(msg, field="drain_batch")
        self.primary = primary
        self.outbox = outbox
        self.drain_batch = drain_batch
        self._summarizer = (
            primary if isinstance(primary, SummarizingBillingStore) else None
        )
        outbox.attach(self)

    def add(self, records: Sequence[BillingRecord]) -> int:
        """
        Store *records* in the primary, or durably in the outbox while the
        primary is unavailable or records wait there; return how many
        were new (for records kept in the outbox: how many distinct
        request ids they hold, as the primary's duplicates are not known
        yet).

        Raises:
            StoreError: the primary failed otherwise (nothing was kept), or
                the outbox cannot be written (`StoreFullError`: its disk or
                map is full; nothing was kept).
        """
        if not records:
            return 0
        if not self.outbox.pending("billing"):
            try:
                return self.primary.add(records)
            except StoreUnavailableError as exc:
                _log.debug("billing records go to the outbox: %s", exc)
        self.outbox.put("billing", len(records), encode_billing(records))
        return len({r.request_id for r in records})

    def drain_once(self) -> int:
        """
        Hand the oldest waiting records to the primary, then delete them;
        return how many were handed over.

        Raises:
            Exception: what the primary raised; the records stay.
        """
        batches = self.outbox.oldest("billing", self.drain_batch, decode_billing)
        if not batches:
            return 0
        records = [record for _, batch in batches for record in batch]
        self.primary.add(records)
        self.outbox.remove("billing", [number for number, _ in batches])
        return len(records)

    def pending(self) -> int:
        """
        How many billing records wait in the outbox, not yet visible to reads.
        """
        return self.outbox.pending("billing")

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> list[BillingRecord]:
        """
        The primary's records of the tenant in ``[start, end]`` (those
        still in the outbox are not among them).
        """
        return self.primary.query(tenant_id, start, end)

    def summary(
        self, tenant_id: str, start: datetime, end: datetime, by: Sequence[str]
    ) -> list[UsageSummary]:
        """
        The primary's totals (or the totals of `query`), as
        `zerfoo_cloud.stores.protocols.SummarizingBillingStore` promises.
        """
        if self._summarizer is not None:
            return self._summarizer.summary(tenant_id, start, end, by)
        return summarize(self.primary.query(tenant_id, start, end), tuple(by))

    def close(self) -> None:
        """
        Stop draining into the primary and close it; what waits stays in
        the outbox (its owner closes it).
        """
        self.outbox.detach(self)
        self.primary.close()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {type(self.primary).__name__} via {self.outbox!r}>"
        )


class _TenantListingOutboxBillingStore(OutboxBillingStore):
    """
    An `OutboxBillingStore` over a primary that names its tenants.
    """

    primary: TenantListingBillingStore

    def tenant_ids(self) -> list[str]:
        """
        The primary's tenants (those only in the outbox are not named yet).
        """
        return self.primary.tenant_ids()
