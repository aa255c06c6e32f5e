"""
A key's own limits (`KeyRecord.rate_limit`, ``token_budget``,
``max_concurrent_requests``): set within the tenant's, changed by
`TenantManager.update_key`, taken with the tenant's at admission.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.budgets._support import PRICES
from tests.conftest import FakeClock
from zerfoo_cloud import (
    InvalidConfigError,
    KeyNotFoundError,
    TenantConfig,
    TenantManager,
)
from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.budgets.holds import BudgetHold
from zerfoo_cloud.key_records import KEY_LIMITS, KeyRecord, key_from_dict
from zerfoo_cloud.limits import MAX_LIMIT
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryLimiterStore
from zerfoo_cloud.stores.protocols import LimiterStore
from zerfoo_cloud.stores.redis import RedisLimiterStore
from zerfoo_cloud.tenants import KeyLimits, Tenant

#: The time of the ``clock`` fixture (tests/conftest.py) when a test starts.
T0 = FakeClock().now
ORIGINAL = "zc-original-key-0123456789"


@pytest.fixture
def manager(clock: FakeClock) -> TenantManager:
    """acme: 10 requests and 1000 tokens a minute, 4 in flight, models m1 and m2."""
    m = TenantManager(clock=clock, cache_ttl=0)
    m.create(
        TenantConfig(
            "acme",
            ORIGINAL,
            rate_limit=10,
            token_budget=1000,
            max_concurrent_requests=4,
            model_allow_list=("m1", "m2"),
        )
    )
    return m


def _limited(manager: TenantManager, **limits: Any) -> Tenant:
    # A handle of acme found by a new key with *limits* of its own.
    secret, _ = manager.create_key("acme", name="limited", **limits)
    return manager.get_by_api_key(secret)


# -- records ----------------------------------------------------------------


def test_old_key_records_read_as_without_limits() -> None:
    """A stored key without limit fields has none of its own; a key without limits stores none."""
    data = {"id": "k-0123456789abcdef", "key_hash": "a" * 64, "name": "", "prefix": ""}
    key = key_from_dict(data)
    assert key.limits() == dict.fromkeys(KEY_LIMITS, 0)
    assert key.to_dict() == data | {"created_at": 0.0}
    assert key.view(T0) | {} == key.view(T0)
    assert {n: key.view(T0)[n] for n in KEY_LIMITS} == dict.fromkeys(KEY_LIMITS, 0)


@pytest.mark.parametrize("value", [-1, 2**53 + 1, 1.5, "5", True, None], ids=repr)
@pytest.mark.parametrize("name", KEY_LIMITS)
def test_bad_stored_limits_are_refused(name: str, value: Any) -> None:
    """A stored limit that is not an integer from 0 to 2**53 is a ValueError naming it."""
    data = KeyRecord(id="k-0123456789abcdef", key_hash="a" * 64).to_dict()
    data[name] = value
    with pytest.raises(ValueError, match=name):
        key_from_dict(json.loads(json.dumps(data)))


# -- within the tenant's ----------------------------------------------------


def _limit(name: str, value: int) -> dict[str, Any]:
    # Keyword arguments setting one limit.
    return {name: value}


@pytest.mark.parametrize(
    ("name", "ceiling"),
    [("rate_limit", 10), ("token_budget", 1000), ("max_concurrent_requests", 4)],
)
def test_a_key_limit_above_the_tenants_is_refused(
    manager: TenantManager, name: str, ceiling: int
) -> None:
    """A key's limit equal to the tenant's is accepted; one above it is refused naming the field, nothing made or changed."""
    before = manager.list_keys("acme")
    with pytest.raises(InvalidConfigError) as info:
        manager.create_key("acme", name="over", **_limit(name, ceiling + 1))
    assert info.value.field == name
    assert str(ceiling) in str(info.value)
    assert manager.list_keys("acme") == before
    _, key = manager.create_key("acme", name="at", **_limit(name, ceiling))
    assert getattr(key, name) == ceiling
    with pytest.raises(InvalidConfigError) as info:
        manager.update_key("acme", key.id, name="renamed", **_limit(name, ceiling + 1))
    assert info.value.field == name
    assert manager.list_keys("acme")[-1] == key


def test_a_tenant_without_a_limit_takes_any_key_limit(clock: FakeClock) -> None:
    """A tenant limit of 0 is none: any key limit lies within it."""
    m = TenantManager(clock=clock)
    m.create(TenantConfig("free", ORIGINAL, rate_limit=0, token_budget=0))
    _, key = m.create_key(
        "free", name="k", rate_limit=2**53, token_budget=7, max_concurrent_requests=3
    )
    assert key.limits() == {
        "rate_limit": 2**53,
        "token_budget": 7,
        "max_concurrent_requests": 3,
    }


@pytest.mark.parametrize("value", [-1, 2**53 + 1, 1.0, "1", True])
def test_bad_limit_values_are_refused(manager: TenantManager, value: Any) -> None:
    """A limit that is not an integer from 0 to 2**53 is refused naming the field."""
    with pytest.raises(InvalidConfigError) as info:
        manager.create_key("acme", name="x", token_budget=value)
    assert info.value.field == "token_budget"
    assert len(manager.list_keys("acme")) == 1


# -- update_key -------------------------------------------------------------


def test_update_key_changes_what_it_is_given(
    manager: TenantManager, clock: FakeClock
) -> None:
    """update_key changes name, expiry, scope and limits; what it is not given stays."""
    _, key = manager.create_key(
        "acme", name="ci", model_scope=("m1",), rate_limit=5, expires_at=T0 + 60
    )
    updated = manager.update_key("acme", key.id, token_budget=100)
    assert updated == manager.list_keys("acme")[-1]
    assert (updated.name, updated.model_scope, updated.expires_at) == (
        "ci",
        ("m1",),
        T0 + 60,
    )
    assert (updated.rate_limit, updated.token_budget) == (5, 100)
    updated = manager.update_key(
        "acme",
        key.id,
        name="deploy",
        expires_at=None,
        model_scope=(),
        rate_limit=0,
        max_concurrent_requests=2,
    )
    assert updated.name == "deploy"
    assert updated.expires_at is None
    assert updated.model_scope == ()
    assert updated.limits() == {
        "rate_limit": 0,
        "token_budget": 100,
        "max_concurrent_requests": 2,
    }
    assert updated.key_hash == key.key_hash
    clock.advance(30)
    updated = manager.update_key("acme", key.id, expires_at=T0 + 90)
    assert updated.expires_at == T0 + 90


def test_update_key_refuses_bad_values_and_changes_nothing(
    manager: TenantManager,
) -> None:
    """A bad name, expiry or scope is refused naming the field; the key is as it was."""
    _, key = manager.create_key("acme", name="ci")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": " x"}, "name"),
        ({"expires_at": T0}, "expires_at"),
        ({"model_scope": ("m3",)}, "model_scope"),
        ({"rate_limit": 11}, "rate_limit"),
    ]
    for changes, field in cases:
        with pytest.raises(InvalidConfigError) as info:
            manager.update_key("acme", key.id, token_budget=5, **changes)
        assert info.value.field == field
        assert manager.list_keys("acme")[-1] == key


def test_update_key_refuses_keys_that_no_longer_work(
    manager: TenantManager, clock: FakeClock
) -> None:
    """A revoked, expired or unknown key cannot be updated (revived)."""
    _, revoked = manager.create_key("acme", name="r")
    manager.revoke_key("acme", revoked.id)
    _, expiring = manager.create_key("acme", name="e", expires_at=T0 + 10)
    clock.advance(10)
    for key_id in (revoked.id, expiring.id, "k-0000000000000000"):
        with pytest.raises(KeyNotFoundError):
            manager.update_key("acme", key_id, expires_at=None)


def test_rotation_keeps_the_keys_limits(manager: TenantManager) -> None:
    """The key a rotation makes has its predecessor's limits."""
    _, key = manager.create_key(
        "acme", name="ci", rate_limit=3, token_budget=30, max_concurrent_requests=1
    )
    _, new, _ = manager.rotate_api_key("acme", key.id, grace=60)
    assert new.limits() == key.limits()


# -- admission ----------------------------------------------------------------


def test_key_rate_limit_at_the_limit_and_past(manager: TenantManager) -> None:
    """A key of 3 requests a minute passes 3 and refuses the 4th, naming the key; the tenant's other keys go on."""
    tenant = _limited(manager, rate_limit=3)
    admissions = [tenant.begin_request(0) for _ in range(4)]
    assert [a.allowed for a in admissions] == [True, True, True, False]
    refused = admissions[-1]
    assert refused.refused_by == "requests"
    assert refused.refused_by_key
    assert refused.requests is not None
    assert (refused.requests.limit, refused.requests.remaining) == (3, 0)
    assert refused.retry_after == pytest.approx(20.0)
    # The tighter quota is reported: the key's 3 left, not the tenant's.
    assert admissions[1].requests is not None
    assert admissions[1].requests.limit == 3
    assert admissions[1].requests.remaining == 1
    # The tenant's own bucket holds what the key took.
    other = manager.get_by_api_key(ORIGINAL)
    first = other.begin_request(0)
    assert first.allowed
    assert first.requests is not None
    assert (first.requests.limit, first.requests.remaining) == (10, 6)


def test_key_token_budget_at_the_limit_and_past(manager: TenantManager) -> None:
    """A key of 100 tokens a minute admits reservations up to 100 and refuses one past it; a refund reaches both buckets."""
    tenant = _limited(manager, token_budget=100)
    assert tenant.begin_request(60).allowed
    assert tenant.begin_request(40).allowed
    refused = tenant.begin_request(1)
    assert not refused.allowed
    assert refused.refused_by == "tokens"
    assert refused.refused_by_key
    tenant.end_request(40, 30)  # 10 back to the key and to the tenant
    assert tenant.begin_request(10).allowed
    assert not tenant.begin_request(1).allowed
    assert manager.get("acme").token_quota().remaining == 1000 - 100
    tenant.deduct_tokens(5)
    tenant.refund_tokens(5)
    assert manager.get("acme").token_quota().remaining == 1000 - 100


def test_key_concurrency_at_the_limit_and_past(manager: TenantManager) -> None:
    """A key of 2 in flight (tenant 4): 2 pass, the 3rd is refused as the key's; given back, both counts drop."""
    tenant = _limited(manager, max_concurrent_requests=2)
    other = manager.get_by_api_key(ORIGINAL)
    assert tenant.begin_request(0).allowed
    assert tenant.begin_request(0).allowed
    refused = tenant.begin_request(0)
    assert (refused.allowed, refused.refused_by, refused.refused_by_key) == (
        False,
        "concurrency",
        True,
    )
    assert tenant.in_flight() == 2
    # The tenant's two other slots: its other key takes them, then the
    # tenant's limit refuses (not the key's).
    assert other.begin_request(0).allowed
    assert other.begin_request(0).allowed
    tenant.end_request(0, 0)
    assert other.begin_request(0).allowed
    by_tenant = tenant.begin_request(0)
    assert (by_tenant.refused_by, by_tenant.refused_by_key) == ("concurrency", False)
    assert tenant.in_flight() == 4
    tenant.release_concurrent()
    for _ in range(3):
        other.end_request(0, 0)
    assert tenant.in_flight() == 0
    assert tenant.allow_concurrent()
    assert tenant.allow_concurrent()
    assert not tenant.allow_concurrent()


def test_key_limits_on_the_asyncio_path(manager: TenantManager) -> None:
    """begin_request_async and end_request_async take and give back the key's slot and buckets."""
    asyncio.run(
        _asyncio_path(_limited(manager, rate_limit=2, max_concurrent_requests=1))
    )


async def _asyncio_path(tenant: Tenant) -> None:
    assert (await tenant.begin_request_async(5)).allowed
    refused = await tenant.begin_request_async(5)
    assert (refused.refused_by, refused.refused_by_key) == ("concurrency", True)
    await tenant.end_request_async(5, 5)
    assert (await tenant.begin_request_async(5)).allowed
    await tenant.release_concurrent_async()
    await tenant.reconcile_tokens_async(5, 0)
    refused = await tenant.begin_request_async(5)
    assert (refused.refused_by, refused.refused_by_key) == ("requests", True)
    assert tenant.in_flight() == 0


def test_a_key_slot_alone_when_the_tenant_has_no_concurrency_limit(
    clock: FakeClock,
) -> None:
    """A tenant without a concurrency limit: a key's own slot still limits it."""
    m = TenantManager(clock=clock)
    m.create(TenantConfig("free", ORIGINAL, rate_limit=0, token_budget=0))
    secret, _ = m.create_key("free", name="k", max_concurrent_requests=1)
    tenant = m.get_by_api_key(secret)
    assert tenant.begin_request(0).allowed
    refused = tenant.begin_request(0)
    assert (refused.refused_by, refused.refused_by_key) == ("concurrency", True)
    tenant.end_request(0, 0)
    assert tenant.begin_request(0).allowed


def test_a_tenant_limit_lowered_below_a_keys_is_the_one_that_refuses(
    manager: TenantManager,
) -> None:
    """Key limits stay as set when the tenant's is lowered: the tighter (the tenant's) refuses, and says so."""
    _, key = manager.create_key("acme", name="k", rate_limit=8)
    manager.update("acme", rate_limit=2)
    assert manager.list_keys("acme")[-1].rate_limit == 8
    tenant = manager.get_by_api_key(manager.rotate_api_key("acme", key.id, grace=0)[0])
    assert [tenant.begin_request(0).allowed for _ in range(2)] == [True, True]
    refused = tenant.begin_request(0)
    assert (refused.refused_by, refused.refused_by_key) == ("requests", False)
    assert refused.requests is not None
    assert refused.requests.limit == 2


def test_admit_takes_the_keys_buckets_but_no_slot(manager: TenantManager) -> None:
    """Tenant.admit (no slot) takes from the key's buckets too, and leaves every slot free."""
    tenant = _limited(manager, rate_limit=1, max_concurrent_requests=1)
    assert tenant.admit(0).allowed
    assert tenant.in_flight() == 0
    refused = tenant.admit(0)
    assert (refused.refused_by, refused.refused_by_key) == ("requests", True)
    assert tenant.allow_concurrent()
    assert not tenant.allow_concurrent()
    tenant.release_concurrent()
    assert tenant.in_flight() == 0


def test_the_largest_stored_limit_is_the_limiters() -> None:
    """A stored key holds at most the limiter's largest limit, and that one."""
    data = KeyRecord(id="k-0123456789abcdef", key_hash="a" * 64).to_dict()
    data["rate_limit"] = MAX_LIMIT
    assert key_from_dict(data).rate_limit == MAX_LIMIT


# -- with spend budgets -----------------------------------------------------


@pytest.fixture(params=["memory", "lmdb", "redis"])
def limiter_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[LimiterStore]:
    """Each limiter store: memory, an LMDB folder, the Redis on 127.0.0.1 (on the caller's clock)."""
    if request.param == "memory":
        yield MemoryLimiterStore()
    elif request.param == "lmdb":
        stores = LMDBStores.open(tmp_path / "db")
        yield stores.limits
        stores.close()
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        # The tests' clock, not Redis's: no refill between two steps.
        store = RedisLimiterStore.from_url(url, prefix=prefix, trust_caller_clock=True)
        yield store
        store.close()


def _budgeted(clock: FakeClock, limits: LimiterStore) -> tuple[TenantManager, Tenant]:
    # acme (4 in flight, 1000 tokens a minute, a lifetime budget of 1000
    # micro-units) and a handle by a key of 1 in flight and 100 tokens a
    # minute with a lifetime budget of 900 of its own.
    m = TenantManager(clock=clock, limits=limits, cache_ttl=0)
    m.create(
        TenantConfig(
            "acme",
            ORIGINAL,
            rate_limit=0,
            token_budget=1000,
            max_concurrent_requests=4,
        )
    )
    m.set_budgets("acme", [SpendBudget("lifetime", 1000, "USD")])
    secret, key = m.create_key(
        "acme", name="k", token_budget=100, max_concurrent_requests=1
    )
    m.set_budgets("acme", [SpendBudget("lifetime", 900, "USD")], key_id=key.id)
    return m, m.get_by_api_key(secret)


def _hold(tenant: Tenant, clock: FakeClock, worst: int) -> BudgetHold:
    return BudgetHold(tenant.budget_accounts(clock.now), worst, PRICES, "toy-1")


def _state(m: TenantManager, tenant: Tenant) -> tuple[int, int, int, int, int]:
    # (tenant's slots, key's slots, tenant's tokens, key's tokens, key
    # budget's remaining).
    limits = KeyLimits.of("acme", tenant.key)
    assert limits is not None
    assert limits.tok_rate is not None
    (key_budget,) = m.spend("acme", key_id=tenant.key_id)
    return (
        tenant.in_flight(),
        m.limits.slots_in_use(limits.con_key),
        tenant.token_quota().remaining,
        m.limiter.peek(limits.tok_key, limits.tok_rate).remaining,
        key_budget.remaining,
    )


def test_one_admission_takes_both_slots_both_buckets_and_the_holds(
    clock: FakeClock, limiter_store: LimiterStore
) -> None:
    """A limited key with spend budgets: one admission takes the tenant's and the key's slot and tokens and holds both budgets, all or nothing; one settlement gives all of it back."""
    m, tenant = _budgeted(clock, limiter_store)
    hold = _hold(tenant, clock, 600)
    assert tenant.begin_request(30, hold).allowed
    assert _state(m, tenant) == (1, 1, 970, 70, 300)
    # The key's slot is full: refused for concurrency, by the key; nothing taken.
    refused = tenant.begin_request(30, _hold(tenant, clock, 100))
    assert (refused.refused_by, refused.refused_by_key) == ("concurrency", True)
    assert _state(m, tenant) == (1, 1, 970, 70, 300)
    assert tenant.end_request(30, 10, charge=(hold, 250)) == (250, 250)
    assert _state(m, tenant) == (0, 0, 990, 90, 650)
    # At the key budget's remaining (650) it passes; one past it, refused
    # by the budget, with no slot and no token taken.
    refused = tenant.begin_request(10, _hold(tenant, clock, 651))
    assert (refused.allowed, refused.refused_by, refused.refused_by_key) == (
        False,
        "budget",
        False,
    )
    assert refused.budget is not None
    assert refused.budget.key_id == tenant.key_id
    assert _state(m, tenant) == (0, 0, 990, 90, 650)
    at_limit = _hold(tenant, clock, 650)
    assert tenant.begin_request(10, at_limit).allowed
    assert _state(m, tenant) == (1, 1, 980, 80, 0)
    assert tenant.end_request(10, 10, charge=(at_limit, 650)) == (900, 900)
    assert _state(m, tenant) == (0, 0, 980, 80, 0)


def test_the_key_token_bucket_refuses_before_the_budgets_are_held(
    clock: FakeClock, limiter_store: LimiterStore
) -> None:
    """A request past the key's tokens (the tenant's and the budgets have room) is refused by the key and holds nothing."""
    m, tenant = _budgeted(clock, limiter_store)
    refused = tenant.begin_request(101, _hold(tenant, clock, 10))
    assert (refused.refused_by, refused.refused_by_key) == ("tokens", True)
    assert _state(m, tenant) == (0, 0, 1000, 100, 900)


def test_key_limits_and_budgets_on_the_asyncio_path(
    clock: FakeClock, limiter_store: LimiterStore
) -> None:
    """begin_request_async and end_request_async take and settle the slots, tokens and holds together."""
    m, tenant = _budgeted(clock, limiter_store)

    async def run() -> None:
        hold = _hold(tenant, clock, 600)
        assert (await tenant.begin_request_async(30, hold)).allowed
        assert _state(m, tenant) == (1, 1, 970, 70, 300)
        refused = await tenant.begin_request_async(0, _hold(tenant, clock, 1))
        assert (refused.refused_by, refused.refused_by_key) == ("concurrency", True)
        spent = await tenant.end_request_async(30, 40, charge=(hold, 700))
        assert spent == (700, 700)
        assert _state(m, tenant) == (0, 0, 960, 60, 200)
        refused = await tenant.begin_request_async(0, _hold(tenant, clock, 201))
        assert refused.refused_by == "budget"
        assert _state(m, tenant) == (0, 0, 960, 60, 200)

    async def run_and_close() -> None:
        try:
            await run()
        finally:
            connection = getattr(limiter_store, "async_connection", None)
            if connection is not None:
                await connection.aclose()

    asyncio.run(run_and_close())
