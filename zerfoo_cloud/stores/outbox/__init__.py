"""
A durable local outbox: billing records and audit entries that the records
database (a store shared by many hosts) cannot take now wait on the host's
disk, and are drained into it, exactly once, when it is back.

::

    outbox = Outbox.open("/var/lib/zerfoo-cloud/outbox")
    billing = OutboxBillingStore(shared_billing_store, outbox)
    audit = OutboxAuditStore(shared_audit_store, outbox)
    meter = TokenMeter(billing)
    logger = AuditLogger(audit, secret=secret)

While the shared store raises `zerfoo_cloud.errors.StoreUnavailableError`,
`OutboxBillingStore.add` and `OutboxAuditStore.append_linked` write their
batches to the outbox (one fsynced LMDB transaction) and return; a
background thread per outbox hands them to the shared store once it
answers, oldest first, and deletes each only after the store committed it.
Request ids (billing) and batch keys (audit, with a
`zerfoo_cloud.stores.protocols.KeyedAuditStore`) make a batch sent twice
harmless. A process killed with batches in the outbox leaves them on disk;
the next one to open the outbox drains them. `Outbox.depth` (and the
``outbox_pending`` gauge of `zerfoo_cloud.metrics.OutboxMetrics`) says how
many wait. See ``docs/fleet.md``.
"""

from __future__ import annotations

from zerfoo_cloud.stores.outbox._audit import OutboxAuditStore, takes_batch_key
from zerfoo_cloud.stores.outbox._billing import DEFAULT_DRAIN_BATCH, OutboxBillingStore
from zerfoo_cloud.stores.outbox._drainer import FIRST_RETRY, IDLE_POLL, MAX_RETRY
from zerfoo_cloud.stores.outbox._outbox import (
    KINDS,
    Outbox,
    OutboxDepth,
    OutboxSink,
    OutboxWatcher,
    QuarantinedBatch,
)

__all__ = [
    "DEFAULT_DRAIN_BATCH",
    "FIRST_RETRY",
    "IDLE_POLL",
    "KINDS",
    "MAX_RETRY",
    "Outbox",
    "OutboxAuditStore",
    "OutboxBillingStore",
    "OutboxDepth",
    "OutboxSink",
    "OutboxWatcher",
    "QuarantinedBatch",
    "takes_batch_key",
]
