"""
The `ReplayCache` contract, run against every implementation.

To add a backend, add a branch to the `replay_cache` fixture and one
`pytest.param` to its params.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests._redis_servers import REDIS_PARAMS, redis_target
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryReplayCache
from zerfoo_cloud.stores.protocols import ReplayCache
from zerfoo_cloud.stores.redis import RedisReplayCache

NOW = 1_700_000_000.0


class DictReplayCache:
    """
    The smallest ReplayCache written outside the library: a dict and a lock.
    """

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def add(self, key: str, expires_at: float, now: float) -> bool:
        with self.lock:
            if self.seen.get(key, now) > now:
                return False
            self.seen[key] = expires_at
            return True

    def close(self) -> None:
        pass


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory, id="memory"),
        pytest.param("lmdb", marks=pytest.mark.lmdb, id="lmdb"),
        pytest.param("third_party", marks=pytest.mark.third_party, id="third_party"),
        *REDIS_PARAMS,
    ]
)
def replay_cache(
    request: pytest.FixtureRequest, lmdb_stores: LMDBStores, redis_prefix: str
) -> Iterator[ReplayCache]:
    """
    Each implementation of `ReplayCache` (Redis trusting the caller's clock,
    as the suite moves time by hand).
    """
    if request.param == "memory":
        yield MemoryReplayCache()
    elif request.param == "lmdb":
        yield lmdb_stores.replay
    elif request.param == "third_party":
        yield DictReplayCache()
    else:
        url, cluster = redis_target(request)
        cache = RedisReplayCache.from_url(
            url, cluster=cluster, prefix=redis_prefix, trust_caller_clock=True
        )
        yield cache
        client = cache.connection.client
        for key in client.scan_iter(match=redis_prefix + "*"):
            client.delete(key)
        cache.close()


def test_is_a_replay_cache(replay_cache: ReplayCache) -> None:
    """
    Every implementation satisfies the runtime-checkable protocol.
    """
    assert isinstance(replay_cache, ReplayCache)


def test_new_key_is_added_once(replay_cache: ReplayCache) -> None:
    """
    The first add of a key is True; a second one before it expires is False.
    """
    assert replay_cache.add("a", NOW + 60, NOW) is True
    assert replay_cache.add("a", NOW + 60, NOW + 1) is False
    assert replay_cache.add("b", NOW + 60, NOW + 1) is True


def test_key_expires_exactly_at_its_time(replay_cache: ReplayCache) -> None:
    """
    A key is held until just before expires_at and gone at it.
    """
    assert replay_cache.add("a", NOW + 60, NOW)
    assert not replay_cache.add("a", NOW + 120, NOW + 59.999)
    assert replay_cache.add("a", NOW + 120, NOW + 60)
    assert not replay_cache.add("a", NOW + 120, NOW + 61)


def test_already_expired_entry_is_not_held(replay_cache: ReplayCache) -> None:
    """
    A key added with an expiry at or before now is not held.
    """
    assert replay_cache.add("a", NOW, NOW)
    assert replay_cache.add("a", NOW + 10, NOW)


def test_unicode_and_long_keys_are_distinct(replay_cache: ReplayCache) -> None:
    """
    Keys with any characters and of any length are kept apart.
    """
    long_a = "x" * 2000 + "a"
    long_b = "x" * 2000 + "b"
    for key in ("é", "e", long_a, long_b, ""):
        assert replay_cache.add(key, NOW + 60, NOW), key
    for key in ("é", "e", long_a, long_b, ""):
        assert not replay_cache.add(key, NOW + 60, NOW), key


def test_many_expired_keys_make_room(replay_cache: ReplayCache) -> None:
    """
    After many keys expire, each of them can be added again.
    """
    for i in range(300):
        assert replay_cache.add(f"k{i}", NOW + 1, NOW)
    for i in range(300):
        assert replay_cache.add(f"k{i}", NOW + 100, NOW + 2)


def test_concurrent_adds_admit_exactly_one(replay_cache: ReplayCache) -> None:
    """
    Eight threads adding the same key at once: exactly one wins.
    """
    barrier = threading.Barrier(8)

    def add(_: int) -> bool:
        barrier.wait(10)
        return replay_cache.add("same", NOW + 60, NOW)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(add, range(8)))
    assert results.count(True) == 1


def test_close_twice_is_harmless(replay_cache: ReplayCache) -> None:
    """
    Closing a cache twice raises nothing.
    """
    replay_cache.close()
    replay_cache.close()


def test_memory_cache_purges_and_validates_its_interval() -> None:
    """
    The memory cache sweeps expired entries every purge_interval adds; 0 is refused.
    """
    from zerfoo_cloud.errors import InvalidConfigError

    cache = MemoryReplayCache(purge_interval=2)
    cache.add("a", NOW + 1, NOW)
    cache.add("b", NOW + 100, NOW + 5)
    assert cache.all() == {"b": NOW + 100}
    assert len(cache) == 1
    with pytest.raises(InvalidConfigError):
        MemoryReplayCache(purge_interval=0)
    assert MemoryReplayCache(purge_interval=1).add("a", NOW + 1, NOW)
