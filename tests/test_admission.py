"""
Whole-request admission and settlement: `RateLimiter.admit` and
`RateLimiter.settle`, `Tenant.begin_request` and `Tenant.end_request`, through
the `AdmissionStore` fast path and through the generic `LimiterStore` methods.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import FakeClock
from tests.stores.test_pluggable import DictLimiterStore
from zerfoo_cloud import TenantConfig, TenantManager
from zerfoo_cloud.errors import StoreError
from zerfoo_cloud.limits import BucketState, Rate, RateLimiter
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryLimiterStore
from zerfoo_cloud.stores.protocols import AdmissionStore, BucketStore, LimiterStore

T = TypeVar("T")


class GenericOnly(DictLimiterStore):
    """
    A third-party limiter store (generic methods only) whose bucket updates
    can be made to fail.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fail_buckets = False

    def update(
        self,
        keys: Sequence[str],
        change: Callable[
            [list[BucketState | None]], tuple[list[BucketState | None] | None, T]
        ],
    ) -> T:
        if self.fail_buckets:
            msg = "the bucket store is down"
            raise StoreError(msg)
        return super().update(keys, change)


class FailingSettle(MemoryLimiterStore):
    """
    A memory store whose atomic settle fails.
    """

    def settle(
        self,
        slot_key: str | None,
        bucket: tuple[str, float, float, int] | None,
        now: float,
    ) -> None:
        msg = "settle failed"
        raise StoreError(msg)


def test_generic_wrapper_has_no_fast_path() -> None:
    """The wrapper used below really takes the generic path."""
    store = GenericOnly()
    assert isinstance(store, LimiterStore)
    assert not isinstance(store, AdmissionStore)
    assert not isinstance(store, BucketStore)
    assert isinstance(MemoryLimiterStore(), AdmissionStore)


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.integers(0, 40), st.booleans()),
        st.tuples(st.just("settle"), st.integers(-30, 30), st.booleans()),
        st.tuples(st.just("wait"), st.floats(0.0, 5.0), st.just(False)),
    ),
    max_size=40,
)


@given(_ops)
def test_fast_path_decides_like_the_generic_path(
    ops: list[tuple[str, float, bool]],
) -> None:
    """The AdmissionStore fast path and the generic methods give the same decisions and states."""
    clock_a, clock_b = FakeClock(), FakeClock()
    fast = RateLimiter(MemoryLimiterStore(), clock=clock_a)
    plain_store = GenericOnly()
    plain = RateLimiter(plain_store, clock=clock_b)
    req, tok = Rate(5, 10.0), Rate(60, 10.0)
    for op, amount, with_slot in ops:
        slot = ("c", 3) if with_slot else None
        if op == "admit":
            asks = [("r", req, 1), ("t", tok, int(amount))]
            assert fast.admit(slot, asks) == plain.admit(slot, asks)
        elif op == "settle":
            key = "c" if with_slot else None
            fast.settle(key, ("t", tok, int(amount)))
            plain.settle(key, ("t", tok, int(amount)))
        else:
            clock_a.advance(amount)
            clock_b.advance(amount)
        for key in ("r", "t"):
            assert fast.store.get(key) == plain_store.get(key)
        assert fast.store.slots_in_use("c") == plain_store.slots_in_use("c")


@pytest.fixture(params=["memory", "lmdb", "generic"])
def manager(
    request: pytest.FixtureRequest, clock: FakeClock, lmdb_stores: LMDBStores
) -> TenantManager:
    """
    A manager over the memory fast path, the LMDB fast path and a generic store.
    """
    if request.param == "memory":
        return TenantManager(clock=clock)
    if request.param == "lmdb":
        return TenantManager(
            lmdb_stores.tenants, limits=lmdb_stores.limits, clock=clock
        )
    return TenantManager(limits=GenericOnly(), clock=clock)


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


def test_generic_end_request_frees_the_slot_when_the_refund_fails(
    clock: FakeClock,
) -> None:
    """With a generic store, a failing token refund still gives the slot back."""
    store = GenericOnly()
    m = TenantManager(limits=store, clock=clock)
    t = m.create(TenantConfig("acme", "k", 0, 100, max_concurrent_requests=1))
    assert t.begin_request(50).allowed
    store.fail_buckets = True
    with pytest.raises(StoreError):
        t.end_request(50, 10)
    assert t.in_flight() == 0


def test_fast_end_request_frees_the_slot_when_settle_fails(clock: FakeClock) -> None:
    """When the atomic settle fails, the slot is still given back on its own."""
    m = TenantManager(limits=FailingSettle(), clock=clock)
    t = m.create(TenantConfig("acme", "k", 0, 100, max_concurrent_requests=1))
    assert t.begin_request(50).allowed
    with pytest.raises(StoreError):
        t.end_request(50, 10)
    assert t.in_flight() == 0
    assert t.begin_request(50).allowed


def _refuse(name: str, *_: object) -> NoReturn:
    msg = f"{name} is not the admission primitive"
    raise AssertionError(msg)


class AdmissionOnly(MemoryLimiterStore):
    """
    A memory store whose per-limit paths refuse to run: only the admission
    primitive (`admit`, `settle`) and the reads (`get`, `slots_in_use`) work.
    """

    def __init__(self) -> None:
        super().__init__()
        for name in ("update", "take", "acquire_slot", "release_slot"):
            setattr(self, name, functools.partial(_refuse, name))


def test_single_bucket_methods_use_the_admission_primitive(clock: FakeClock) -> None:
    """Every seed `Tenant` limit method is served by `admit` and `settle` alone."""
    manager = TenantManager(limits=AdmissionOnly(), clock=clock)
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
