"""
Whole-request admission and settlement: `RateLimiter.admit` and
`RateLimiter.settle`, `Tenant.begin_request` and `Tenant.end_request`, over
the memory and LMDB stores and a store written outside the library.
"""

from __future__ import annotations

import pytest

from tests.conftest import FakeClock
from tests.stores._dict_limiter import DictLimiterStore
from zerfoo_cloud import CorruptRecordError, TenantConfig, TenantManager
from zerfoo_cloud.limits import Decision, Rate, RateLimiter
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.protocols import LimiterStore


@pytest.fixture(params=["memory", "lmdb", "third-party"])
def manager(
    request: pytest.FixtureRequest, clock: FakeClock, lmdb_stores: LMDBStores
) -> TenantManager:
    """
    A manager over the memory store, the LMDB store and a third-party store.
    """
    if request.param == "memory":
        return TenantManager(clock=clock)
    if request.param == "lmdb":
        return TenantManager(
            lmdb_stores.tenants, limits=lmdb_stores.limits, clock=clock
        )
    return TenantManager(limits=DictLimiterStore(), clock=clock)


def test_begin_request_refused_for_concurrency_keeps_quotas(
    manager: TenantManager,
) -> None:
    """A request refused for concurrency takes no request or token quota and reports both."""
    t = manager.create(TenantConfig("acme", "k", 10, 100, max_concurrent_requests=1))
    assert t.begin_request(30).allowed
    refused = t.begin_request(30)
    assert not refused.allowed
    assert refused.refused_by == "concurrency"
    assert refused.requests is not None
    assert refused.requests.remaining == 9
    assert refused.tokens is not None
    assert refused.tokens.remaining == 70
    assert t.in_flight() == 1


def test_begin_request_refused_by_a_quota_holds_no_slot(
    manager: TenantManager,
) -> None:
    """A request refused by the token budget holds no slot and keeps its request quota."""
    t = manager.create(TenantConfig("acme", "k", 10, 100, max_concurrent_requests=1))
    refused = t.begin_request(101)
    assert not refused.allowed
    assert refused.refused_by == "tokens"
    assert t.in_flight() == 0
    assert t.request_quota().remaining == 10
    at_limit = t.begin_request(100)
    assert at_limit.allowed
    assert at_limit.tokens is not None
    assert at_limit.tokens.remaining == 0


def test_end_request_refunds_charges_and_frees_the_slot(
    manager: TenantManager,
) -> None:
    """Ending a request refunds unused tokens, charges extra ones, and frees its slot."""
    t = manager.create(TenantConfig("acme", "k", 0, 100, max_concurrent_requests=2))
    assert t.begin_request(50).allowed
    assert t.begin_request(20).allowed
    assert t.in_flight() == 2
    t.end_request(50, 10)  # refund 40
    assert t.token_quota().remaining == 70
    t.end_request(20, 45)  # charge 25 more
    assert t.token_quota().remaining == 45
    assert t.in_flight() == 0


def test_unlimited_tenant_is_always_admitted(manager: TenantManager) -> None:
    """A tenant without limits is admitted with no decisions and ends without store calls."""
    t = manager.create(TenantConfig("free", "k", 0, 0))
    admission = t.begin_request(10**6)
    assert admission.allowed
    assert admission.requests is None
    assert admission.tokens is None
    t.end_request(10**6, 5)


def test_lmdb_end_request_frees_the_slot_of_a_corrupt_bucket(
    clock: FakeClock, lmdb_stores: LMDBStores
) -> None:
    """When the settlement fails (a corrupt token bucket), the slot is still
    given back in a step of its own."""
    m = TenantManager(lmdb_stores.tenants, limits=lmdb_stores.limits, clock=clock)
    t = m.create(TenantConfig("acme", "k", 0, 100, max_concurrent_requests=1))
    assert t.begin_request(50).allowed
    env = lmdb_stores.volatile
    buckets = env.dbs["buckets"]
    env.write(lambda txn: txn.put(b"acme\x00tok", b"short", db=buckets))
    with pytest.raises(CorruptRecordError):
        t.end_request(50, 10)
    assert t.in_flight() == 0
    env.write(lambda txn: txn.delete(b"acme\x00tok", db=buckets))
    assert t.begin_request(50).allowed
    assert t.in_flight() == 1


def _documented_only(store: LimiterStore) -> list[str]:
    # The public methods of *store* beyond the protocol's own.
    allowed = {"admit", "settle", "get", "slots_in_use", "clear", "close"}
    return [
        name
        for name in dir(store)
        if not name.startswith("_")
        and callable(getattr(store, name))
        and name not in allowed
    ]


def test_the_third_party_store_has_only_the_documented_methods() -> None:
    """The store driven below implements the protocol's methods and nothing else."""
    store = DictLimiterStore()
    assert isinstance(store, LimiterStore)
    assert _documented_only(store) == []


def test_every_tenant_limit_method_runs_on_the_documented_methods(
    clock: FakeClock,
) -> None:
    """Every seed `Tenant` limit method works over a store with only `admit`,
    `settle` and the reads."""
    manager = TenantManager(limits=DictLimiterStore(), clock=clock)
    t = manager.create(
        TenantConfig(
            "a", "ka", rate_limit=2, token_budget=100, max_concurrent_requests=1
        )
    )
    assert t.allow_request()
    assert t.allow_request()
    assert not t.allow_request()
    assert t.consume_tokens(100)
    assert not t.consume_tokens(1)
    t.refund_tokens(30)
    assert t.token_quota().remaining == 30
    t.deduct_tokens(50)
    assert t.token_quota().remaining == 0
    assert not t.consume_tokens(1)
    clock.advance(12.0)  # 20 tokens refilled: the debt of 20 is repaid
    assert t.token_quota().remaining == 0
    clock.advance(0.6)
    assert t.consume_tokens(1)
    assert t.allow_concurrent()
    assert not t.allow_concurrent()
    assert t.in_flight() == 1
    t.release_concurrent()
    assert t.in_flight() == 0
    clock.advance(60.0)
    assert t.admit(0).allowed
    ticket = t.begin_request(5)
    assert ticket.allowed
    t.end_request(5, 3)
    assert t.in_flight() == 0
    manager.delete("a")
    assert manager.limits.get("a\x00tok") is None


def test_every_rate_limiter_method_runs_on_the_documented_methods(
    clock: FakeClock,
) -> None:
    """`RateLimiter` decides the same over the third-party store as the seed expects."""
    limiter = RateLimiter(DictLimiterStore(), clock=clock)
    rate = Rate(10, 10.0)
    assert limiter.acquire("k", rate, 4) == Decision(True, 10, 6, 0.0, 4.0)
    assert not limiter.acquire("k", rate, 7).allowed
    assert [
        d.allowed for d in limiter.acquire_many([("k", rate, 6), ("j", rate, 11)])
    ] == [
        True,
        False,
    ]
    assert limiter.peek("k", rate).remaining == 6
    assert limiter.refund("k", rate, 100).remaining == 10
    debt = limiter.deduct("k", rate, 15)
    assert (debt.allowed, debt.remaining) == (False, 0)
    assert debt.retry_after == pytest.approx(6.0)
    free, decisions = limiter.admit(("c", 1), [("j", rate, 2)])
    assert free
    assert decisions[0].remaining == 8
    assert not limiter.admit(("c", 1), [("j", rate, 2)])[0]
    limiter.settle("c", ("j", rate, 2))
    assert limiter.peek("j", rate).remaining == 10
    assert limiter.store.slots_in_use("c") == 0
