"""
Checked by mypy only: every backend satisfies its Protocol.
"""

from __future__ import annotations

from zerfoo_cloud.metrics import ResourceStats
from zerfoo_cloud.resources import ResourceManager
from zerfoo_cloud.stores.lmdb import LMDBLimiterStore, LMDBStores, LMDBTenantStore
from zerfoo_cloud.stores.memory import (
    MemoryAuditStore,
    MemoryBillingStore,
    MemoryLimiterStore,
    MemoryTenantStore,
)
from zerfoo_cloud.stores.protocols import (
    AuditStore,
    BillingStore,
    LimiterStore,
    TenantStore,
)


def check(stores: LMDBStores) -> None:
    """
    Assign each backend to its protocol type.
    """
    tenant_stores: list[TenantStore] = [MemoryTenantStore(), stores.tenants]
    limiter_stores: list[LimiterStore] = [MemoryLimiterStore(), stores.limits]
    billing_stores: list[BillingStore] = [MemoryBillingStore()]
    audit_stores: list[AuditStore] = [MemoryAuditStore()]
    lmdb_tenants: LMDBTenantStore = stores.tenants
    lmdb_limits: LMDBLimiterStore = stores.limits
    resource_stats: ResourceStats = ResourceManager(1)
    del (
        tenant_stores,
        limiter_stores,
        billing_stores,
        audit_stores,
        lmdb_tenants,
        lmdb_limits,
        resource_stats,
    )
