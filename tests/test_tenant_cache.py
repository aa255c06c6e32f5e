"""
The lookup cache of `TenantManager.get_by_api_key`: what it keeps, for how
long, and what makes it forget.
"""

from __future__ import annotations

import threading

import pytest

from tests.conftest import FakeClock
from zerfoo_cloud import (
    InvalidConfigError,
    TenantConfig,
    TenantManager,
    TenantNotFoundError,
)
from zerfoo_cloud.stores.memory import MemoryLimiterStore, MemoryTenantStore
from zerfoo_cloud.tenants import DEFAULT_CACHE_TTL, MAX_CACHE_TTL


def _pair(clock: FakeClock, **options: float) -> tuple[TenantManager, TenantManager]:
    """
    Two managers over one store: the first serves lookups, the second plays
    another process changing the store behind its back.
    """
    store, limits = MemoryTenantStore(), MemoryLimiterStore()
    serving = TenantManager(store, limits=limits, clock=clock, **options)  # type: ignore[arg-type]
    other = TenantManager(store, limits=limits, clock=clock)
    return serving, other


def test_found_tenant_is_kept_for_the_ttl(clock: FakeClock) -> None:
    """A key deleted behind the manager's back works until the TTL passes, then not."""
    m, other = _pair(clock)
    other.create(TenantConfig("acme", "key-a", 5, 0))
    assert m.get_by_api_key("key-a").id == "acme"
    other.delete("acme")
    clock.advance(DEFAULT_CACHE_TTL - 0.01)
    assert m.get_by_api_key("key-a").id == "acme"
    clock.advance(0.01)
    with pytest.raises(TenantNotFoundError):
        m.get_by_api_key("key-a")


def test_unknown_key_is_not_cached(clock: FakeClock) -> None:
    """A key refused once works as soon as another manager creates its tenant."""
    m, other = _pair(clock)
    with pytest.raises(TenantNotFoundError):
        m.get_by_api_key("key-new")
    other.create(TenantConfig("acme", "key-new", 5, 0))
    assert m.get_by_api_key("key-new").id == "acme"


def test_changes_through_the_same_manager_apply_at_once(clock: FakeClock) -> None:
    """Updating, re-keying and deleting through the caching manager is seen by its next lookup."""
    m, _ = _pair(clock)
    m.create(TenantConfig("acme", "key-a", 5, 0))
    assert m.get_by_api_key("key-a").record.rate_limit == 5
    m.update("acme", rate_limit=7)
    assert m.get_by_api_key("key-a").record.rate_limit == 7
    new_key = m.rotate_key("acme")
    with pytest.raises(TenantNotFoundError):
        m.get_by_api_key("key-a")
    assert m.get_by_api_key(new_key).id == "acme"
    m.delete("acme")
    with pytest.raises(TenantNotFoundError):
        m.get_by_api_key(new_key)


def test_ttl_zero_reads_the_store_every_time(clock: FakeClock) -> None:
    """With cache_ttl=0 a key deleted by another manager is refused at once."""
    m, other = _pair(clock, cache_ttl=0)
    other.create(TenantConfig("acme", "key-a", 5, 0))
    assert m.get_by_api_key("key-a").id == "acme"
    other.update("acme", rate_limit=9)
    assert m.get_by_api_key("key-a").record.rate_limit == 9
    other.delete("acme")
    with pytest.raises(TenantNotFoundError):
        m.get_by_api_key("key-a")


def test_clock_going_back_expires_entries(clock: FakeClock) -> None:
    """An entry stamped in the future (the clock went back) is not trusted."""
    m, other = _pair(clock)
    other.create(TenantConfig("acme", "key-a", 5, 0))
    m.get_by_api_key("key-a")
    other.delete("acme")
    clock.advance(-10.0)
    with pytest.raises(TenantNotFoundError):
        m.get_by_api_key("key-a")


def test_cache_keeps_the_most_recently_used(clock: FakeClock) -> None:
    """Past cache_size the least recently used tenant is dropped first."""
    m, other = _pair(clock, cache_size=2)
    for n in (1, 2, 3):
        other.create(TenantConfig(f"t{n}", f"key-{n}", 5, 0))
    m.get_by_api_key("key-1")
    m.get_by_api_key("key-2")
    m.get_by_api_key("key-1")  # now the most recent
    m.get_by_api_key("key-3")  # drops key-2
    for n in (1, 2, 3):
        other.delete(f"t{n}")
    assert m.get_by_api_key("key-1").id == "t1"
    assert m.get_by_api_key("key-3").id == "t3"
    with pytest.raises(TenantNotFoundError):
        m.get_by_api_key("key-2")


@pytest.mark.parametrize("ttl", [0, 0.25, MAX_CACHE_TTL])
def test_ttl_in_range_is_accepted(ttl: float) -> None:
    """cache_ttl from 0 to MAX_CACHE_TTL (inclusive) is accepted."""
    assert TenantManager(cache_ttl=ttl).cache_ttl == ttl


@pytest.mark.parametrize(
    "ttl", [-0.001, MAX_CACHE_TTL + 0.001, float("nan"), float("inf"), True, "1"]
)
def test_ttl_out_of_range_is_refused(ttl: object) -> None:
    """A cache_ttl below 0, past MAX_CACHE_TTL or not a number is refused."""
    with pytest.raises(InvalidConfigError) as info:
        TenantManager(cache_ttl=ttl)  # type: ignore[arg-type]
    assert info.value.field == "cache_ttl"


def test_cache_size_limits() -> None:
    """cache_size 1 is accepted; 0, negative and non-integers are refused."""
    assert TenantManager(cache_size=1).cache_size == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidConfigError) as info:
            TenantManager(cache_size=bad)  # type: ignore[arg-type]
        assert info.value.field == "cache_size"


def test_lookups_from_many_threads(clock: FakeClock) -> None:
    """Threads looking up and evicting at once each get their own tenant."""
    m, other = _pair(clock, cache_size=3)
    keys = {f"t{n}": f"key-{n}" for n in range(8)}
    for tenant_id, key in keys.items():
        other.create(TenantConfig(tenant_id, key, 5, 0))
    errors: list[str] = []

    def work(offset: int) -> None:
        items = list(keys.items())
        for i in range(400):
            tenant_id, key = items[(i + offset) % len(items)]
            found = m.get_by_api_key(key).id
            if found != tenant_id:
                errors.append(f"{key} gave {found}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
