"""
Checked by mypy only: every billing and audit backend satisfies its Protocols.
"""

from __future__ import annotations

from zerfoo_cloud.metering import NDJSONFileRecorder, NDJSONRecorder, UsageRecorder
from zerfoo_cloud.stores.lmdb import LMDBAuditStore, LMDBBillingStore
from zerfoo_cloud.stores.memory import MemoryAuditStore, MemoryBillingStore
from zerfoo_cloud.stores.protocols import (
    AuditStore,
    BillingStore,
    ChainedAuditStore,
    SummarizingBillingStore,
)


def billing(memory: MemoryBillingStore, lmdb: LMDBBillingStore) -> None:
    """Billing stores are BillingStores; LMDB's also summarises."""
    store: BillingStore = memory
    store = lmdb
    summarizing: SummarizingBillingStore = lmdb
    del store, summarizing


def audit(memory: MemoryAuditStore, lmdb: LMDBAuditStore) -> None:
    """Audit stores keep a chain."""
    store: AuditStore = memory
    store = lmdb
    chained: ChainedAuditStore = memory
    chained = lmdb
    del store, chained


def recorders(stream: NDJSONRecorder, file: NDJSONFileRecorder) -> None:
    """Both NDJSON recorders are UsageRecorders."""
    recorder: UsageRecorder = stream
    recorder = file
    del recorder
