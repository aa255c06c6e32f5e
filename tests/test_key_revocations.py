"""
`TenantManager` with `KeyRevocations`: every change is announced after the
store has it, every manager drops the changed tenant's keys (and only
those) at once, a lookup racing a revocation never caches what it read,
and a failed announcement never undoes the change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tests.conftest import FakeClock
from zerfoo_cloud import TenantConfig, TenantManager, TenantNotFoundError
from zerfoo_cloud.stores.memory import (
    MemoryKeyRevocations,
    MemoryLimiterStore,
    MemoryTenantStore,
)
from zerfoo_cloud.tenant_records import TenantRecord
from zerfoo_cloud.tenants.key_cache import KeyCache


class Hosts:
    """
    Two managers over one store and one `MemoryKeyRevocations`: *serving*
    keeps tenants for the longest time to live on a clock that stands
    still, so only a revocation can make it forget; *admin* changes them.
    """

    def __init__(
        self, clock: FakeClock, store: MemoryTenantStore | None = None
    ) -> None:
        self.store = store or MemoryTenantStore()
        self.limits = MemoryLimiterStore()
        self.revocations = MemoryKeyRevocations()
        self.heard: list[str | None] = []
        self.revocations.subscribe(self.heard.append)
        self.serving = TenantManager(
            self.store,
            limits=self.limits,
            clock=clock,
            cache_ttl=1.0,
            revocations=self.revocations,
        )
        self.admin = TenantManager(
            self.store, limits=self.limits, revocations=self.revocations
        )


def test_every_change_is_seen_by_the_other_manager_at_once(clock: FakeClock) -> None:
    """Re-key, new limits, new allow list, delete: the serving manager sees each at once."""
    hosts = Hosts(clock)
    serving, admin = hosts.serving, hosts.admin
    admin.create(TenantConfig("acme", "key-a", 5, 0))
    assert serving.get_by_api_key("key-a").record.rate_limit == 5
    admin.update("acme", rate_limit=7)
    assert serving.get_by_api_key("key-a").record.rate_limit == 7
    admin.update("acme", model_allow_list=["toy-1"])
    assert serving.get_by_api_key("key-a").record.model_allow_list == ("toy-1",)
    new_key = admin.rotate_key("acme")
    with pytest.raises(TenantNotFoundError):
        serving.get_by_api_key("key-a")
    assert serving.get_by_api_key(new_key).id == "acme"
    admin.delete("acme")
    with pytest.raises(TenantNotFoundError):
        serving.get_by_api_key(new_key)
    assert hosts.heard == [None, "acme", "acme", "acme", "acme", "acme"]


def test_a_key_reused_by_a_new_tenant_is_the_new_tenant_at_once(
    clock: FakeClock,
) -> None:
    """Deleted and created again with the same key: the new tenant's limits apply at once."""
    hosts = Hosts(clock)
    hosts.admin.create(TenantConfig("acme", "key-a", 5, 0))
    assert hosts.serving.get_by_api_key("key-a").record.rate_limit == 5
    hosts.store.delete("acme")  # behind every manager's back: no message
    hosts.admin.create(TenantConfig("acme", "key-a", 9, 0))
    assert hosts.serving.get_by_api_key("key-a").record.rate_limit == 9


def test_an_unknown_key_works_as_soon_as_it_is_created(clock: FakeClock) -> None:
    """Refusals are not cached: a key refused once works right after its tenant is created."""
    hosts = Hosts(clock)
    with pytest.raises(TenantNotFoundError):
        hosts.serving.get_by_api_key("key-new")
    hosts.admin.create(TenantConfig("acme", "key-new", 0, 0))
    assert hosts.serving.get_by_api_key("key-new").id == "acme"


def test_only_the_changed_tenants_keys_are_dropped(clock: FakeClock) -> None:
    """A message naming one tenant keeps the others cached."""
    hosts = Hosts(clock)
    for n in range(3):
        hosts.admin.create(TenantConfig(f"t{n}", f"key-{n}", 0, 0))
        hosts.serving.get_by_api_key(f"key-{n}")
    hosts.store.delete("t1")  # behind every manager's back
    hosts.store.delete("t2")
    hosts.revocations.publish("t1")
    with pytest.raises(TenantNotFoundError):
        hosts.serving.get_by_api_key("key-1")
    # t2's deletion was never announced: still served from the cache.
    assert hosts.serving.get_by_api_key("key-2").id == "t2"
    hosts.revocations.publish("unknown-tenant")  # harmless
    assert hosts.serving.get_by_api_key("key-0").id == "t0"


def test_none_drops_every_key(clock: FakeClock) -> None:
    """A subscription coming back (None) drops every cached key."""
    hosts = Hosts(clock)
    for n in range(3):
        hosts.admin.create(TenantConfig(f"t{n}", f"key-{n}", 0, 0))
        hosts.serving.get_by_api_key(f"key-{n}")
        hosts.store.delete(f"t{n}")
    hosts.serving._revoked(None)  # what every subscriber hears on (re)connecting
    for n in range(3):
        with pytest.raises(TenantNotFoundError):
            hosts.serving.get_by_api_key(f"key-{n}")


class RacingStore(MemoryTenantStore):
    """A tenant store that runs *during* once while a key is being read."""

    def __init__(self) -> None:
        super().__init__()
        self.during: Callable[[], None] | None = None

    def get_by_key_hash(self, key_hash: str) -> TenantRecord | None:
        found = super().get_by_key_hash(key_hash)
        during, self.during = self.during, None
        if during is not None:
            during()  # the change commits and is announced after the read
        return found


def test_a_lookup_racing_a_revocation_does_not_cache_what_it_read(
    clock: FakeClock,
) -> None:
    """A key read just before a re-key is returned once, but not kept: the next lookup refuses it."""
    store = RacingStore()
    hosts = Hosts(clock, store)
    hosts.admin.create(TenantConfig("acme", "key-a", 0, 0))

    def rekey() -> None:
        hosts.admin.rotate_key("acme")

    store.during = rekey
    assert hosts.serving.get_by_api_key("key-a").id == "acme"  # read before the re-key
    with pytest.raises(TenantNotFoundError):
        hosts.serving.get_by_api_key("key-a")


def test_a_failed_announcement_keeps_the_change(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Revocations that cannot publish: the re-key happens and returns its key; a warning says so."""
    hosts = Hosts(clock)
    hosts.admin.create(TenantConfig("acme", "key-a", 0, 0))
    hosts.revocations.close()
    new_key = hosts.admin.rotate_key("acme")
    assert hosts.admin.get_by_api_key(new_key).id == "acme"
    with pytest.raises(TenantNotFoundError):
        hosts.admin.get_by_api_key("key-a")
    assert "could not announce that tenant 'acme' changed" in caplog.text
    assert "key-a" not in caplog.text
    assert new_key not in caplog.text


def test_a_closed_manager_hears_nothing(clock: FakeClock) -> None:
    """After close the manager keeps its cache until the time to live; close twice is harmless."""
    hosts = Hosts(clock)
    hosts.admin.create(TenantConfig("acme", "key-a", 0, 0))
    hosts.serving.get_by_api_key("key-a")
    hosts.serving.close()
    hosts.serving.close()
    hosts.admin.delete("acme")
    assert hosts.serving.get_by_api_key("key-a").id == "acme"
    clock.advance(1.0)
    with pytest.raises(TenantNotFoundError):
        hosts.serving.get_by_api_key("key-a")


def test_revocations_while_many_threads_look_up(clock: FakeClock) -> None:
    """Lookups and revocations in many threads: no error, and the last state wins."""
    hosts = Hosts(clock)
    for n in range(8):
        hosts.admin.create(TenantConfig(f"t{n}", f"key-{n}", 1, 0))
    errors: list[BaseException] = []

    def look() -> None:
        try:
            for i in range(2000):
                hosts.serving.get_by_api_key(f"key-{i % 8}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=look) for _ in range(4)]
    for t in threads:
        t.start()
    for limit in range(2, 200):
        hosts.admin.update(f"t{limit % 8}", rate_limit=limit)
    for t in threads:
        t.join(30)
    assert not errors
    for n in range(8):
        expected = hosts.store.get(f"t{n}")
        assert expected is not None
        assert hosts.serving.get_by_api_key(f"key-{n}").record == expected


def test_the_cache_index_follows_evictions_and_replacements() -> None:
    """forget finds exactly a group's live entries after LRU evictions and re-filing."""
    cache: KeyCache[str] = KeyCache()
    cache.put("d1", 0.0, "v1", 2, group="a")
    cache.put("d2", 0.0, "v2", 2, group="a")
    cache.put("d3", 0.0, "v3", 2, group="b")  # evicts d1
    cache.put("d2", 0.0, "v2b", 2, group="b")  # d2 moves from a to b
    assert cache.forget("a") == 0
    assert cache.forget("b") == 2
    assert len(cache) == 0
    epoch = cache.epoch
    cache.clear()
    assert not cache.put("d4", 0.0, "v4", 2, group="a", epoch=epoch)
    assert cache.put("d4", 0.0, "v4", 2, group="a", epoch=cache.epoch)
    assert cache.get("d4", 0.5, 1.0) == "v4"
    assert cache.get("d4", 1.0, 1.0) is None  # expired and unfiled
    assert cache.forget("a") == 0
