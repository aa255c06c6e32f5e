"""
The `BillingStore` contract, run against every implementation.

To add a backend, add a fixture that yields a fresh store and a
`pytest.param` naming it in `billing_store`.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerfoo_cloud.billing_records import MAX_COST, MAX_KEY_ID_LENGTH
from zerfoo_cloud.metering import (
    MAX_MODEL_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    MAX_TENANT_ID_BYTES,
    MAX_TOKENS,
    BillingRecord,
    TokenMeter,
    summarize,
)
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryBillingStore
from zerfoo_cloud.stores.protocols import BillingStore

if TYPE_CHECKING:
    from zerfoo_cloud.stores.postgres import PostgresStores

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
US = timedelta(microseconds=1)


class ThirdPartyBillingStore:
    """
    A billing store written outside the library: the protocol's three methods, no base class.
    """

    def __init__(self) -> None:
        self._records: dict[str, BillingRecord] = {}

    def add(self, records: Sequence[BillingRecord]) -> int:
        new = [r for r in records if r.request_id not in self._records]
        for r in new:
            self._records.setdefault(r.request_id, r)
        return len({r.request_id for r in new})

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> builtins.list[BillingRecord]:
        found = [
            r
            for r in self._records.values()
            if r.tenant_id == tenant_id and start <= r.timestamp <= end
        ]
        return sorted(found, key=lambda r: (r.timestamp, r.request_id))

    def close(self) -> None:
        pass


@pytest.fixture
def memory_billing() -> MemoryBillingStore:
    """An in-memory billing store."""
    return MemoryBillingStore()


@pytest.fixture
def lmdb_billing(tmp_path: Path) -> Iterator[BillingStore]:
    """An LMDB billing store in a fresh folder."""
    with LMDBStores.open(tmp_path / "db") as stores:
        yield stores.billing


@pytest.fixture
def postgres_billing(request: pytest.FixtureRequest) -> BillingStore:
    """A PostgreSQL billing store over an empty database."""
    stores: PostgresStores = request.getfixturevalue("postgres_stores")
    return stores.billing


@pytest.fixture
def third_party_billing() -> ThirdPartyBillingStore:
    """A minimal billing store defined by this test module."""
    return ThirdPartyBillingStore()


@pytest.fixture(
    params=[
        pytest.param("memory_billing", marks=pytest.mark.memory, id="memory"),
        pytest.param("lmdb_billing", marks=pytest.mark.lmdb, id="lmdb"),
        pytest.param("postgres_billing", marks=pytest.mark.postgres, id="postgres"),
        pytest.param(
            "third_party_billing", marks=pytest.mark.third_party, id="third_party"
        ),
    ]
)
def billing_store(request: pytest.FixtureRequest) -> BillingStore:
    """Each billing store implementation in turn."""
    store: BillingStore = request.getfixturevalue(request.param)
    return store


def rec(
    at: datetime = T0,
    rid: str | None = None,
    *,
    tenant: str = "acme",
    model: str = "m",
    tokens: tuple[int, int] = (3, 5),
) -> BillingRecord:
    """A billing record with the given fields."""
    if rid is None:
        return BillingRecord(tenant, *tokens, at, model)
    return BillingRecord(tenant, *tokens, at, model, rid)


def test_implements_the_protocol(billing_store: BillingStore) -> None:
    """Every backend is a BillingStore at run time."""
    assert isinstance(billing_store, BillingStore)


def test_add_counts_new_records_and_skips_known_request_ids(
    billing_store: BillingStore,
) -> None:
    """add() stores each request id once, across calls and within one call."""
    a, b = rec(rid="a"), rec(T0 + US, rid="b")
    assert billing_store.add([a, b]) == 2
    assert billing_store.add([a, rec(T0 + 5 * US, rid="b")]) == 0
    assert billing_store.add([rec(rid="c"), rec(T0 + US, rid="c")]) == 1
    assert billing_store.add([]) == 0
    found = billing_store.query("acme", T0 - US, T0 + 10 * US)
    assert [r.request_id for r in found] == ["a", "c", "b"]
    assert found[0] == a


def test_query_includes_both_ends_to_the_microsecond(
    billing_store: BillingStore,
) -> None:
    """Records at start and end are returned; one microsecond outside is not."""
    start, end = T0, T0 + timedelta(days=1)
    billing_store.add(
        [
            rec(start - US, "before"),
            rec(start, "start"),
            rec(end, "end"),
            rec(end + US, "after"),
        ]
    )
    assert [r.request_id for r in billing_store.query("acme", start, end)] == [
        "start",
        "end",
    ]
    assert [r.request_id for r in billing_store.query("acme", end, end)] == ["end"]


def test_query_is_oldest_first_with_ties_by_request_id(
    billing_store: BillingStore,
) -> None:
    """Records come back oldest first whatever the insertion order; equal times by request id."""
    billing_store.add(
        [rec(T0 + 2 * US, "z"), rec(T0, "y"), rec(T0, "b"), rec(T0 + US, "a")]
    )
    found = billing_store.query("acme", T0, T0 + 2 * US)
    assert [r.request_id for r in found] == ["b", "y", "a", "z"]


def test_query_keeps_tenants_apart(billing_store: BillingStore) -> None:
    """A tenant whose id is a prefix of another's sees only its own records."""
    billing_store.add(
        [rec(rid="1", tenant="a"), rec(rid="2", tenant="ab"), rec(rid="3", tenant="b")]
    )
    assert [r.request_id for r in billing_store.query("a", T0, T0)] == ["1"]
    assert [r.request_id for r in billing_store.query("ab", T0, T0)] == ["2"]
    assert billing_store.query("nobody", T0, T0) == []


def test_empty_and_reversed_ranges_return_nothing(billing_store: BillingStore) -> None:
    """A range with no records, or with end before start, returns an empty list."""
    billing_store.add([rec(rid="1")])
    assert billing_store.query("acme", T0 + US, T0 + 2 * US) == []
    assert billing_store.query("acme", T0 + US, T0 - US) == []


def test_records_round_trip_at_every_limit(billing_store: BillingStore) -> None:
    """The largest tenant id, model, request id and token counts come back unchanged."""
    big = rec(
        T0,
        "r" * MAX_REQUEST_ID_LENGTH,
        tenant="é" * (MAX_TENANT_ID_BYTES // 2),
        model="模" * MAX_MODEL_LENGTH,
        tokens=(MAX_TOKENS, 0),
    )
    old = rec(datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=timezone.utc), "moon")
    assert billing_store.add([big, old]) == 2
    assert billing_store.query(big.tenant_id, T0, T0) == [big]
    assert billing_store.query("acme", old.timestamp, old.timestamp) == [old]


def test_timestamps_in_other_zones_are_kept_as_utc(billing_store: BillingStore) -> None:
    """A record made with a non-UTC aware timestamp is stored and found as the same instant in UTC."""
    tz = timezone(timedelta(hours=5, minutes=30))
    r = rec(T0.astimezone(tz), "tz")
    billing_store.add([r])
    (found,) = billing_store.query("acme", T0, T0)
    assert found.timestamp == T0
    assert found.timestamp.tzinfo == timezone.utc


def test_meter_over_every_store(billing_store: BillingStore) -> None:
    """TokenMeter records, queries and summarises the same way over every store."""
    now = T0.timestamp()
    meter = TokenMeter(billing_store, clock=lambda: now)
    try:
        meter.record("acme", 10, 20, model="a", request_id="1")
        meter.record("acme", 1, 2, model="b", request_id="2")
        meter.record("acme", 1, 2, model="b", request_id="2")
        meter.flush()
        found = meter.query("acme", T0, T0)
        assert [r.request_id for r in found] == ["1", "2"]
        assert meter.summary("acme", T0, T0) == summarize(found)
        assert [s.total_tokens for s in meter.summary("acme", T0, T0, by=())] == [33]
    finally:
        meter.close()


def test_costs_currencies_and_key_ids_round_trip(billing_store: BillingStore) -> None:
    """A record's cost (up to MAX_COST), currency and longest key id come back unchanged, beside unpriced ones."""
    priced = BillingRecord(
        "acme", 3, 5, T0, "m", "p", MAX_COST, "USD", "k" * MAX_KEY_ID_LENGTH
    )
    zero = BillingRecord("acme", 0, 0, T0 + US, "m", "z", 0, "EUR", "key-1")
    keyed = BillingRecord("acme", 1, 1, T0 + 2 * US, "m", "k", 0, "", "key-2")
    unpriced = rec(T0 + 3 * US, "u")
    assert billing_store.add([priced, zero, keyed, unpriced]) == 4
    assert billing_store.query("acme", T0, T0 + 3 * US) == [
        priced,
        zero,
        keyed,
        unpriced,
    ]
    assert (unpriced.cost, unpriced.currency, unpriced.key_id) == (0, "", "")


_codes = st.sampled_from(["", "USD", "EUR"])


@st.composite
def _priced_records(draw: st.DrawFn) -> list[BillingRecord]:
    count = draw(st.integers(0, 12))
    found = []
    for i in range(count):
        currency = draw(_codes)
        found.append(
            BillingRecord(
                "t",
                draw(st.integers(0, 10**6)),
                draw(st.integers(0, 10**6)),
                T0 + timedelta(hours=draw(st.integers(0, 72)), microseconds=i),
                draw(st.sampled_from(["a", "b"])),
                f"r{i}",
                draw(st.integers(0, MAX_COST // 16)) if currency else 0,
                currency,
                draw(st.sampled_from(["", "k1", "k2"])),
            )
        )
    return found


@given(records=_priced_records())
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_summaries_total_costs_by_currency_on_every_store(
    billing_store: BillingStore, records: list[BillingRecord]
) -> None:
    """Every store's summary (SQL, LMDB scan, or summarize) gives the same rows, costs summed per currency."""
    tenant = f"t{uuid.uuid4().hex}"
    ours = [
        attrs.evolve(r, tenant_id=tenant, request_id=tenant + r.request_id)
        for r in records
    ]
    billing_store.add(ours)
    end = T0 + timedelta(days=4)
    meter = TokenMeter(billing_store, background=False)
    try:
        for by in (("model", "day"), ("model",), ("day",), ()):
            rows = meter.summary(tenant, T0, end, by=by)
            assert rows == summarize(ours, by)
            assert sum(r.cost for r in rows) == sum(r.cost for r in ours)
            for code in ("", "USD", "EUR"):
                assert sum(r.cost for r in rows if r.currency == code) == sum(
                    r.cost for r in ours if r.currency == code
                )
    finally:
        meter.close()
