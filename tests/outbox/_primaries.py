"""
Primary stores (the records database) that a test can make unreachable.

The outbox sits in front of a store shared by many hosts. Each primary here
is a real store whose every call raises `StoreUnavailableError` while its
`Switch` is down; the switch is a file on disk, so another process can flip
it. ``lmdb``: real LMDB billing and audit stores (the audit one takes batch
keys, as the PostgreSQL one does; `UnkeyedAuditStore` does not).

To run the outbox suite against another primary (PostgreSQL), add a branch
to `open_primary` that returns its stores and a switch that cuts it off
(for a network store: a TCP proxy that refuses connections while down),
and a ``pytest.param`` to ``PRIMARIES`` in ``conftest.py``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import attrs

from zerfoo_cloud.audit_records.chain import ChainLink
from zerfoo_cloud.audit_records.entry import AuditEntry
from zerfoo_cloud.billing_records import BillingRecord, UsageSummary
from zerfoo_cloud.errors import StoreUnavailableError
from zerfoo_cloud.stores.lmdb import LMDBAuditStore, LMDBBillingStore, LMDBStores
from zerfoo_cloud.stores.lmdb._env import Environment

T = TypeVar("T")

#: Set in a child's environment to ``billing`` or ``audit``: that primary
#: store kills its process with SIGKILL right after it committed a batch
#: (before the outbox deletes it).
KILL_AFTER_COMMIT = "ZC_TEST_KILL_AFTER_COMMIT"


class Switch:
    """
    The primary is down while the file *path* exists (any process may
    create it). *fail_after*: in this process, that many more calls work,
    then the switch goes down by itself. *lose_answers*: that many
    commits happen but raise `StoreUnavailableError` (a connection that
    broke before the answer came).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fail_after: int | None = None
        self.lose_answers = 0
        self.calls = 0

    def down(self) -> None:
        """Make the primary unreachable."""
        self.path.touch()

    def up(self) -> None:
        """Make it reachable again."""
        self.path.unlink(missing_ok=True)

    @property
    def is_down(self) -> bool:
        """Whether it is unreachable now."""
        return self.path.exists()

    def check(self) -> None:
        """Raise as a network store that cannot be reached does."""
        if self.fail_after is not None:
            if self.fail_after <= 0:
                self.fail_after = None
                self.down()
            else:
                self.fail_after -= 1
        if self.is_down:
            raise StoreUnavailableError(
                "test-primary", "the records database cannot be reached"
            )
        self.calls += 1

    def committed(self, kind: str) -> None:
        """After a commit of *kind*: maybe lose the answer, maybe die."""
        if os.environ.get(KILL_AFTER_COMMIT) == kind:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise StoreUnavailableError("test-primary", "the connection broke")


class FlakyBillingStore:
    """A real LMDB billing store behind a `Switch`."""

    def __init__(self, inner: LMDBBillingStore, switch: Switch) -> None:
        self.inner = inner
        self.switch = switch

    def add(self, records: Sequence[BillingRecord]) -> int:
        """Store *records*, unless the switch is down."""
        self.switch.check()
        stored = self.inner.add(records)
        self.switch.committed("billing")
        return stored

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> list[BillingRecord]:
        """The tenant's records, unless the switch is down."""
        self.switch.check()
        return self.inner.query(tenant_id, start, end)

    def summary(
        self, tenant_id: str, start: datetime, end: datetime, by: Sequence[str]
    ) -> list[UsageSummary]:
        """The tenant's totals, unless the switch is down."""
        self.switch.check()
        return self.inner.summary(tenant_id, start, end, by)

    def tenant_ids(self) -> list[str]:
        """Every billed tenant, unless the switch is down."""
        self.switch.check()
        return self.inner.tenant_ids()

    def close(self) -> None:
        """Nothing: the primary's owner closes it."""


class KeyedAuditStore:
    """
    A real LMDB audit store behind a `Switch`, whose ``append_linked``
    takes a batch key: the key is recorded in the same LMDB transaction as
    the entries, and a key seen before stores nothing.
    """

    def __init__(self, folder: Path, switch: Switch) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.env = Environment(
            str(folder),
            ("audit", "audit_time", "audit_meta", "audit_keys"),
            durable=True,
        )
        self.inner = LMDBAuditStore(self.env)
        self.switch = switch

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Append one entry, unless the switch is down."""
        self.switch.check()
        return self.inner.append(entry)

    def append_linked(
        self,
        entries: Sequence[AuditEntry],
        link: Callable[[ChainLink, AuditEntry], AuditEntry],
        *,
        batch_key: str | None = None,
    ) -> list[AuditEntry]:
        """Append *entries* once per *batch_key*, unless the switch is down."""
        self.switch.check()
        body = self.inner.append_write(entries, link)
        keys = self.env.dbs["audit_keys"]

        def write(txn: Any) -> list[AuditEntry]:
            if batch_key is not None:
                if txn.get(batch_key.encode(), db=keys) is not None:
                    return []
                txn.put(batch_key.encode(), b"", db=keys)
            return body(txn)

        stored = self.env.write(write)
        self.switch.committed("audit")
        return stored

    def query(self, tenant_id: str, start: datetime, end: datetime) -> list[AuditEntry]:
        """The tenant's entries, unless the switch is down."""
        self.switch.check()
        return self.inner.query(tenant_id, start, end)

    def walk(
        self,
        visit: Callable[
            [ChainLink, ChainLink, Iterator[tuple[int, AuditEntry | None]]], T
        ],
    ) -> T:
        """Walk the chain, unless the switch is down."""
        self.switch.check()
        return self.inner.walk(visit)

    def purge(self, before: datetime) -> int:
        """Purge, unless the switch is down."""
        self.switch.check()
        return self.inner.purge(before)

    def close(self) -> None:
        """Close the environment."""
        self.env.close()


class UnkeyedAuditStore(KeyedAuditStore):
    """The same store without batch keys: drained at least once."""

    def append_linked(  # type: ignore[override] # no batch_key, on purpose
        self,
        entries: Sequence[AuditEntry],
        link: Callable[[ChainLink, AuditEntry], AuditEntry],
    ) -> list[AuditEntry]:
        """Append *entries*, unless the switch is down."""
        return super().append_linked(entries, link)


@attrs.define
class Primary:
    """A primary's billing and audit stores and the switch that cuts them off."""

    name: str
    billing: FlakyBillingStore
    audit: KeyedAuditStore
    switch: Switch
    closers: list[Callable[[], None]]

    def close(self) -> None:
        """Close what was opened."""
        for close in self.closers:
            close()


def open_primary(name: str, folder: Path, *, keyed: bool = True) -> Primary:
    """
    Open primary *name* (``lmdb``) with its files under *folder*; any
    process opening the same folder gets the same stores and switch.
    """
    if name != "lmdb":
        msg = f"no primary {name!r}"
        raise ValueError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    switch = Switch(folder / "down")
    stores = LMDBStores.open(folder / "billing")
    audit_type = KeyedAuditStore if keyed else UnkeyedAuditStore
    audit = audit_type(folder / "audit", switch)
    return Primary(
        name,
        FlakyBillingStore(stores.billing, switch),
        audit,
        switch,
        [audit.close, stores.close],
    )
