"""
Tenants, a meter and an audit logger on one LMDB store set, for the tests of
durable answers (with writer threads, or through the writer process).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.http._support import Stack
from zerfoo_cloud import AuditLogger, BillingRecord, TokenMeter
from zerfoo_cloud.stores.lmdb import LMDBStores

EVER = (
    datetime(2000, 1, 1, tzinfo=timezone.utc),
    datetime(2100, 1, 1, tzinfo=timezone.utc),
)


class DurableStack:
    """
    The stack of *folder* with one tenant (``acme``, *tenant* its limits), a
    `TokenMeter` and an `AuditLogger` on its LMDB stores; with
    *writer_process*, the store set commits through its writer process.
    """

    def __init__(
        self, folder: Path, *, writer_process: bool = False, **tenant: Any
    ) -> None:
        self.stack = Stack(lmdb=folder)
        self.stack.tenant(**tenant)
        if writer_process:
            # The stack's store set, now with its writer process.
            self.stores = LMDBStores.open(folder, writer_process=True)
            assert self.stores is self.stack.stores
        else:
            assert self.stack.stores is not None
            self.stores = self.stack.stores
        self.meter = TokenMeter(self.stores.billing)
        self.audit = AuditLogger(self.stores.audit)

    def billed(self) -> list[BillingRecord]:
        """The tenant's billing records in the store, read past the writers."""
        return self.stores.billing.query("acme", *EVER)

    def audited(self) -> int:
        """How many audit entries the store holds, read past the writers."""
        return self.stores.audit.walk(lambda _a, _h, entries: sum(1 for _ in entries))

    def close(self) -> None:
        """Close the writers, then the stores."""
        self.meter.close()
        self.audit.close()
        self.stores.close()
        self.stack.close()
