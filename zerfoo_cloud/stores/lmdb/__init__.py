"""
LMDB stores: the embedded default, crash-safe and shared by every process of one host.

``LMDBStores.open(path)`` opens (or creates) a store folder and hands out one
store per role::

    stores = LMDBStores.open("/var/lib/zerfoo-cloud")
    tenants = TenantManager(stores.tenants, limits=stores.limits)

The folder holds two LMDB environments:

- ``data.mdb`` (durable): tenants, billing, audit, replay cache, prices. Every commit
  is on disk when it returns; file mode 0600; a schema-version record is
  checked at open.
- ``limits/`` (volatile): rate-limit buckets and concurrency slots. Commits
  are not fsynced, because limiter state changes on every request and is
  worthless after a restart; it survives a killed process (the page cache
  keeps it) and is rebuilt empty after a machine restart, detected by the
  kernel's boot id, so a torn write after a power loss can never be read.

Every store is safe for many threads and many processes at once. Open a path
once per process: opening it again returns the same `LMDBStores` (reference
counted), since LMDB must not be opened twice in one process.

With ``LMDBStores.open(path, writer_process=True)`` the billing and audit
stores commit the batches of their meters and loggers from one child
process (`zerfoo_cloud.stores.lmdb._channel`, `_commits`, `_writer_process`).
"""

from __future__ import annotations

from zerfoo_cloud.stores.lmdb._audit import LMDBAuditStore
from zerfoo_cloud.stores.lmdb._billing import LMDBBillingStore
from zerfoo_cloud.stores.lmdb._commits import WRITER_PROCESS_LINGER
from zerfoo_cloud.stores.lmdb._limits import LMDBLimiterStore
from zerfoo_cloud.stores.lmdb._prices import LMDBPriceStore
from zerfoo_cloud.stores.lmdb._replay import LMDBReplayCache
from zerfoo_cloud.stores.lmdb._stores import SCHEMA_VERSION, LMDBStores
from zerfoo_cloud.stores.lmdb._tenants import LMDBTenantStore

__all__ = [
    "SCHEMA_VERSION",
    "WRITER_PROCESS_LINGER",
    "LMDBAuditStore",
    "LMDBBillingStore",
    "LMDBLimiterStore",
    "LMDBPriceStore",
    "LMDBReplayCache",
    "LMDBStores",
    "LMDBTenantStore",
]
