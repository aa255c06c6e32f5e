"""
The `AuditStore` contract, run against every implementation, and the
`ChainedAuditStore` contract against the stores that keep a chain.

To add a backend, add a fixture that yields a fresh store and a
`pytest.param` naming it in `audit_store` (and in `chained_store` if it
keeps a chain).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest

from zerfoo_cloud.audit import (
    GENESIS,
    AuditAction,
    AuditEntry,
    AuditResult,
    AuditVerification,
    ChainLink,
    link_entry,
    verify_chain,
)
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryAuditStore
from zerfoo_cloud.stores.protocols import AuditStore, ChainedAuditStore

if TYPE_CHECKING:
    from zerfoo_cloud.stores.postgres import PostgresStores

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
US = timedelta(microseconds=1)


class ThirdPartyAuditStore:
    """
    An audit store written outside the library: append, query and close only.
    """

    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []

    def append(self, entry: AuditEntry) -> AuditEntry:
        self._entries.append(entry)
        return entry

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> builtins.list[AuditEntry]:
        found = [
            e
            for e in self._entries
            if e.tenant_id == tenant_id
            and e.timestamp is not None
            and start <= e.timestamp <= end
        ]
        return sorted(found, key=lambda e: e.timestamp or start)

    def close(self) -> None:
        pass


@pytest.fixture
def memory_audit() -> MemoryAuditStore:
    """An in-memory audit store."""
    return MemoryAuditStore()


@pytest.fixture
def lmdb_audit(tmp_path: Path) -> Iterator[ChainedAuditStore]:
    """An LMDB audit store in a fresh folder."""
    with LMDBStores.open(tmp_path / "db") as stores:
        yield stores.audit


@pytest.fixture
def postgres_audit(request: pytest.FixtureRequest) -> ChainedAuditStore:
    """A PostgreSQL audit store over an empty database."""
    stores: PostgresStores = request.getfixturevalue("postgres_stores")
    return stores.audit


@pytest.fixture
def third_party_audit() -> ThirdPartyAuditStore:
    """A minimal audit store defined by this test module."""
    return ThirdPartyAuditStore()


@pytest.fixture(
    params=[
        pytest.param("memory_audit", marks=pytest.mark.memory, id="memory"),
        pytest.param("lmdb_audit", marks=pytest.mark.lmdb, id="lmdb"),
        pytest.param("postgres_audit", marks=pytest.mark.postgres, id="postgres"),
        pytest.param(
            "third_party_audit", marks=pytest.mark.third_party, id="third_party"
        ),
    ]
)
def audit_store(request: pytest.FixtureRequest) -> AuditStore:
    """Each audit store implementation in turn."""
    store: AuditStore = request.getfixturevalue(request.param)
    return store


@pytest.fixture(
    params=[
        pytest.param("memory_audit", marks=pytest.mark.memory, id="memory"),
        pytest.param("lmdb_audit", marks=pytest.mark.lmdb, id="lmdb"),
        pytest.param("postgres_audit", marks=pytest.mark.postgres, id="postgres"),
    ]
)
def chained_store(request: pytest.FixtureRequest) -> ChainedAuditStore:
    """Each audit store that keeps a hash chain in turn."""
    store: ChainedAuditStore = request.getfixturevalue(request.param)
    return store


def entry(
    at: datetime = T0, *, tenant: str = "acme", path: str = "/v1/x"
) -> AuditEntry:
    """An audit entry with the given fields."""
    return AuditEntry(
        at,
        tenant,
        AuditAction.INFERENCE,
        AuditResult.SUCCESS,
        "llama",
        200,
        "POST",
        path,
        "10.0.0.1",
    )


def _walk(store: ChainedAuditStore) -> AuditVerification:
    return store.walk(lambda anchor, head, entries: verify_chain(anchor, head, entries))


def test_implements_the_protocol(audit_store: AuditStore) -> None:
    """Every backend is an AuditStore at run time."""
    assert isinstance(audit_store, AuditStore)


def test_append_returns_what_query_finds(audit_store: AuditStore) -> None:
    """An appended entry is returned by append() and found, field for field, by query()."""
    stored = audit_store.append(entry())
    assert stored.unchained() == entry()
    assert audit_store.query("acme", T0, T0) == [stored]


def test_query_range_order_and_tenants(audit_store: AuditStore) -> None:
    """query() returns one tenant's entries in [start, end], both ends included, oldest first."""
    for at, tenant in [
        (T0 + 2 * US, "acme"),
        (T0 - US, "acme"),
        (T0, "acme"),
        (T0 + US, "acmex"),
        (T0 + 3 * US, "acme"),
    ]:
        audit_store.append(entry(at, tenant=tenant, path=f"/{at.microsecond}"))
    found = audit_store.query("acme", T0, T0 + 2 * US)
    assert [e.timestamp for e in found] == [T0, T0 + 2 * US]
    assert [e.tenant_id for e in audit_store.query("acmex", T0, T0 + 3 * US)] == [
        "acmex"
    ]
    assert audit_store.query("acme", T0 + US, T0) == []


def test_chained_implements_the_capability(chained_store: ChainedAuditStore) -> None:
    """The memory and LMDB stores are ChainedAuditStores at run time."""
    assert isinstance(chained_store, ChainedAuditStore)


def test_entries_are_numbered_and_linked(chained_store: ChainedAuditStore) -> None:
    """Appended entries get seq 1, 2, 3 and each carries the hash of the one before."""
    first = chained_store.append(entry())
    second, third = chained_store.append_linked([entry(), entry()], link_entry)
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert first.prev_hash == GENESIS.hash
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    report = _walk(chained_store)
    assert report.ok
    assert report.head == ChainLink(3, third.hash)
    assert report.checked == 3


def test_append_linked_is_all_or_nothing(chained_store: ChainedAuditStore) -> None:
    """A link function that fails half-way stores none of the batch."""
    chained_store.append(entry())
    calls = 0

    def failing(prev: ChainLink, e: AuditEntry) -> AuditEntry:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("boom")
        return link_entry(prev, e)

    with pytest.raises(RuntimeError):
        chained_store.append_linked([entry(), entry(), entry()], failing)
    assert len(chained_store.query("acme", T0, T0)) == 1
    assert _walk(chained_store).head.seq == 1
    assert chained_store.append(entry()).seq == 2


def test_purge_drops_the_oldest_and_keeps_an_anchor(
    chained_store: ChainedAuditStore,
) -> None:
    """purge() drops entries before the cutoff in seq order and the rest still verifies."""
    stored = [chained_store.append(entry(T0 + i * US)) for i in range(5)]
    assert chained_store.purge(T0 + 2 * US) == 2
    report = _walk(chained_store)
    assert report.ok
    assert report.anchor == ChainLink(2, stored[1].hash)
    assert report.checked == 3
    assert chained_store.purge(T0 + 2 * US) == 0
    assert [e.seq for e in chained_store.query("acme", T0, T0 + 9 * US)] == [3, 4, 5]


def test_purge_stops_at_the_first_newer_entry(chained_store: ChainedAuditStore) -> None:
    """An entry at or after the cutoff stops the purge even if older ones follow it."""
    for offset in (0, 5, 1):
        chained_store.append(entry(T0 + offset * US))
    assert chained_store.purge(T0 + 5 * US) == 1
    assert _walk(chained_store).ok


def test_purge_everything_then_continue(chained_store: ChainedAuditStore) -> None:
    """After all entries are purged the chain continues from the anchor."""
    last = [chained_store.append(entry()) for _ in range(3)][-1]
    assert chained_store.purge(T0 + US) == 3
    report = _walk(chained_store)
    assert report.ok
    assert report.anchor == report.head == ChainLink(3, last.hash)
    nxt = chained_store.append(entry())
    assert (nxt.seq, nxt.prev_hash) == (4, last.hash)
    assert _walk(chained_store).ok


def test_walk_sees_a_consistent_snapshot(chained_store: ChainedAuditStore) -> None:
    """walk() hands visit the anchor, the head and every entry in seq order."""
    stored = [chained_store.append(entry()) for _ in range(3)]

    def visit(
        anchor: ChainLink,
        head: ChainLink,
        entries: Iterator[tuple[int, AuditEntry | None]],
    ) -> tuple[ChainLink, ChainLink, list[tuple[int, AuditEntry | None]]]:
        return anchor, head, list(entries)

    anchor, head, entries = chained_store.walk(visit)
    assert anchor == GENESIS
    assert head == ChainLink(3, stored[-1].hash)
    assert entries == [(e.seq, e) for e in stored]


def test_stored_entries_keep_every_field(chained_store: ChainedAuditStore) -> None:
    """Every field of an entry survives storage, including Unicode and the chain fields."""
    original = attrs.evolve(entry(), resource="模型", path="/v1/ünïcode")
    stored = chained_store.append(original)
    (found,) = chained_store.query("acme", T0, T0)
    assert found == stored
    assert found.unchained() == original
