"""
PostgreSQL stores: tenants, billing and audit shared by every host of a fleet.

Needs the ``postgres`` extra. Bring the database's schema up to date once
(``zerfoo-cloud db upgrade --db URL``, or `upgrade_schema`), then open it::

    stores = PostgresStores.open("postgresql://zerfoo@db.internal/zerfoo")
    tenants = TenantManager(stores.tenants)
    meter = TokenMeter(stores.billing)
    audit = AuditLogger(stores.audit)

`PostgresStores.open` refuses a database whose schema version is not the
one this library knows. Billing records are partitioned by month
(`PostgresBillingStore.drop_partitions_before` drops old months); audit
appends from every host form one hash chain through a locked head row.
See ``docs/postgres.md``.
"""

from __future__ import annotations

from zerfoo_cloud.stores.postgres._audit import PostgresAuditStore
from zerfoo_cloud.stores.postgres._billing import PostgresBillingStore
from zerfoo_cloud.stores.postgres._prices import PostgresPriceStore
from zerfoo_cloud.stores.postgres._schema import SCHEMA_VERSION, upgrade_schema
from zerfoo_cloud.stores.postgres._stores import PostgresStores
from zerfoo_cloud.stores.postgres._tenants import PostgresTenantStore

__all__ = [
    "SCHEMA_VERSION",
    "PostgresAuditStore",
    "PostgresBillingStore",
    "PostgresPriceStore",
    "PostgresStores",
    "PostgresTenantStore",
    "upgrade_schema",
]
