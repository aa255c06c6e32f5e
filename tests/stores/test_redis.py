"""
What the Redis limiter store and replay cache promise beyond the
conformance suites: Redis's clock, leases that expire and renew, keys that
stay in one cluster slot, exact arithmetic, errors that name the host and
never the password, and limits that hold across processes and through a
`Tenant`.
"""

from __future__ import annotations

import math
import multiprocessing
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._redis_servers import REDIS_PARAMS, redis_target
from tests.stores import _redis_workers
from zerfoo_cloud import RateLimiter, TenantConfig, TenantManager
from zerfoo_cloud.errors import InvalidConfigError, StoreError, StoreUnavailableError
from zerfoo_cloud.limits import Rate
from zerfoo_cloud.stores.memory import MemoryLimiterStore, MemoryTenantStore
from zerfoo_cloud.stores.redis import RedisLimiterStore, RedisReplayCache

pytestmark = pytest.mark.redis

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(params=REDIS_PARAMS)
def target(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """``(url, cluster)``: a single Redis, then a Redis Cluster."""
    return redis_target(request)


@pytest.fixture
def open_store(
    target: tuple[str, bool], redis_prefix: str
) -> Iterator[Callable[..., RedisLimiterStore]]:
    """Open stores on the Redis under test (one prefix); closed and cleared after."""
    opened: list[RedisLimiterStore] = []
    url, cluster = target

    def open_one(**options: Any) -> RedisLimiterStore:
        store = RedisLimiterStore.from_url(
            url, cluster=cluster, prefix=redis_prefix, **options
        )
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()
    cleaner = RedisLimiterStore.from_url(url, cluster=cluster, prefix=redis_prefix)
    cleaner.clear("")
    cleaner.close()


def test_the_clock_is_redis_time(open_store: Callable[..., RedisLimiterStore]) -> None:
    """The caller's now is ignored: stamps are Redis's TIME, close to this host's."""
    store = open_store()
    assert store.admit(None, [("a\x00r", 10.0, 0.0, 1)], 0.0)[1]
    assert store.admit(None, [("a\x00r", 10.0, 0.0, 1)], 1e12)[1]
    state = store.get("a\x00r")
    assert state is not None
    assert state.level == 8.0
    assert abs(state.updated - time.time()) < 5


def test_a_bucket_expires_when_it_would_be_full(
    open_store: Callable[..., RedisLimiterStore],
) -> None:
    """A bucket refilling fast is dropped once full again: it reads as never written."""
    store = open_store()
    assert store.admit(None, [("a\x00r", 1.0, 1000.0, 1)], 0.0)[1]
    assert store.get("a\x00r") is not None
    # ceil(1 unit / 1000 per second) ms + 1 s of margin.
    deadline = time.monotonic() + 5
    while store.get("a\x00r") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert store.admit(None, [("a\x00r", 1.0, 0.0, 1)], 0.0) == (True, True, [0.0])


def test_a_dead_hosts_leases_expire(
    open_store: Callable[..., RedisLimiterStore],
) -> None:
    """Slots of a store that stopped renewing come back after the lease; renewed ones stay."""
    host_a = open_store(lease_seconds=1.0, renew_every=0.2)
    host_b = open_store(lease_seconds=1.0)
    assert host_a.admit(("t\x00c", 2), [], 0.0)[0]
    assert host_b.admit(("t\x00c", 2), [], 0.0)[0]
    assert not host_b.admit(("t\x00c", 2), [], 0.0)[0]
    time.sleep(1.6)  # A renews; B (no slot admitted since) renews too
    assert host_b.slots_in_use("t\x00c") == 2
    host_a.close()  # a dead host: its renewals stop, its lease runs out
    deadline = time.monotonic() + 5
    while not host_b.admit(("t\x00c", 2), [], 0.0)[0]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert host_b.slots_in_use("t\x00c") == 2


def test_renew_reports_and_forgets_expired_leases(
    open_store: Callable[..., RedisLimiterStore],
) -> None:
    """renew() counts leases still held; an expired one is forgotten, settle then frees nothing."""
    store = open_store(lease_seconds=0.3, renew_every=0.29)
    other = open_store()
    assert store.admit(("t\x00c", 5), [], 0.0)[0]
    assert other.admit(("t\x00c", 5), [], 0.0)[0]
    assert store.renew("t\x00c") == 1
    assert store.renew("another") == 0
    store.close()  # stop the thread; the connection is reopened below
    store = open_store(lease_seconds=0.3)
    assert store.admit(("t\x00c", 5), [], 0.0)[0]
    store._renewer.stop()  # a host that stopped renewing
    time.sleep(0.5)
    assert store.renew() == 0
    assert other.slots_in_use("t\x00c") == 1
    store.settle("t\x00c", [], 0.0)  # nothing held: another host's slot stays
    assert other.slots_in_use("t\x00c") == 1


def test_a_failed_settle_keeps_its_lease_for_the_retry(
    open_store: Callable[..., RedisLimiterStore],
) -> None:
    """A settle that fails in Redis gives nothing back; its retry frees one lease, not two."""
    store = open_store()
    other = open_store()
    assert store.admit(("t\x00c", 5), [], 0.0)[0]
    assert store.admit(("t\x00c", 5), [], 0.0)[0]
    broken = store._keys.key("b", "t\x00broken")
    store.connection.client.rpush(broken, b"not a bucket")
    with pytest.raises(StoreError, match="settling") as info:
        store.settle("t\x00c", [("t\x00broken", 1.0, 1.0, 1)], 0.0)
    # Redis answered (a key of the wrong type): not a Redis that is down.
    assert not isinstance(info.value, StoreUnavailableError)
    assert other.slots_in_use("t\x00c") == 2
    store.settle("t\x00c", [], 0.0)  # the retry, as RateLimiter.settle makes it
    assert other.slots_in_use("t\x00c") == 1
    assert store.renew() == 1


def test_keys_of_one_call_share_a_group(
    open_store: Callable[..., RedisLimiterStore],
) -> None:
    """Mixing tenants in one call is refused before anything is sent; braces in a prefix too."""
    store = open_store()
    with pytest.raises(InvalidConfigError, match="share a group"):
        store.admit(None, [("a\x00r", 1.0, 1.0, 1), ("b\x00r", 1.0, 1.0, 1)], 0.0)
    with pytest.raises(InvalidConfigError, match="share a group"):
        store.admit(("b\x00c", 1), [("a\x00r", 1.0, 1.0, 1)], 0.0)
    assert store.get("a\x00r") is None
    with pytest.raises(InvalidConfigError, match="prefix"):
        RedisLimiterStore(store.connection, prefix="x{y}")


def test_a_tenants_keys_share_one_cluster_slot(redis_cluster_url: str) -> None:
    """Every key of a tenant hashes to one slot, whatever braces its id holds."""
    import redis

    store = RedisLimiterStore.from_url(redis_cluster_url, cluster=True, prefix="p:")
    client = redis.Redis.from_url(redis_cluster_url)
    try:
        for tenant in ("acme", "a}b{c", "{x}", "", "%7D"):
            key = store._keys.key
            raw = [key(k, tenant + "\x00" + n) for k in "bs" for n in ("req", "con")]
            slots = {client.cluster("keyslot", r) for r in raw}
            assert len(slots) == 1, (tenant, slots)
    finally:
        client.close()
        store.close()


# -- the arithmetic, compared with zerfoo_cloud.buckets --------------------

_bucket = st.tuples(st.floats(1.0, 1000.0), st.floats(0.0, 50.0, allow_subnormal=False))
_op = st.one_of(
    st.tuples(
        st.just("admit"),
        st.lists(st.integers(0, 60), min_size=1, max_size=3),
        st.booleans(),
    ),
    st.tuples(
        st.just("settle"),
        st.lists(st.integers(-60, 60), min_size=1, max_size=3),
        st.booleans(),
    ),
    st.tuples(st.just("wait"), st.floats(0.0, 5.0), st.booleans()),
)


@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(shapes=st.lists(_bucket, min_size=3, max_size=3), ops=st.lists(_op, max_size=30))
def test_lua_matches_buckets_py_bit_for_bit(
    redis_url: str,
    shapes: list[tuple[float, float]],
    ops: list[tuple[str, object, bool]],
) -> None:
    """Random admits, settles and waits give the very floats the memory store (buckets.py) gives."""
    model = MemoryLimiterStore()
    store = RedisLimiterStore.from_url(
        redis_url, prefix=f"zc-test:{uuid.uuid4().hex}:", trust_caller_clock=True
    )
    store.clear("")
    try:
        now = 1_700_000_000.123
        names = ["g\x00a", "g\x00b", "g\x00c"]
        for op, amounts, with_slot in ops:
            if op == "wait":
                assert isinstance(amounts, float)
                now += amounts
                continue
            assert isinstance(amounts, list)
            buckets = [
                (names[i], shapes[i][0], shapes[i][1], n) for i, n in enumerate(amounts)
            ]
            if op == "admit":
                slot = ("g\x00c", 2) if with_slot else None
                assert store.admit(slot, buckets, now) == model.admit(
                    slot, buckets, now
                )
            else:
                slot_key = "g\x00c" if with_slot else None
                assert store.settle(slot_key, buckets, now) == model.settle(
                    slot_key, buckets, now
                )
            for name in names:
                assert store.get(name) == model.get(name)
            assert store.slots_in_use("g\x00c") == model.slots_in_use("g\x00c")
    finally:
        store.clear("")
        store.close()


@pytest.mark.parametrize("short", [5e-7, 2e-6, 0.0])
def test_epsilon_decides_as_buckets_py(
    redis_url: str, redis_prefix: str, short: float
) -> None:
    """A level short of the cost by less than EPSILON passes; by more, it is refused."""
    model = MemoryLimiterStore()
    store = RedisLimiterStore.from_url(
        redis_url, prefix=redis_prefix, trust_caller_clock=True
    )
    try:
        for at, cost in ((1000.0, 10), (1001.0 - short, 1)):
            asked = [("g\x00a", 10.0, 1.0, cost)]
            assert store.admit(None, asked, at) == model.admit(None, asked, at)
        assert store.get("g\x00a") == model.get("g\x00a")
        assert (model.get("g\x00a").level < 0) == (0 < short < 1e-6)  # type: ignore[union-attr]
    finally:
        store.clear("")
        store.close()


# -- failures ----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_redis_is_a_store_error_without_the_password() -> None:
    """Every method fails with StoreUnavailableError naming host and port, never the password."""
    port = _closed_port()
    url = f"redis://admin:s3cret-pa55@127.0.0.1:{port}/0"
    store = RedisLimiterStore.from_url(url, connect_timeout=0.5)
    cache = RedisReplayCache.from_url(url, connect_timeout=0.5)
    calls: list[Callable[[], object]] = [
        lambda: store.admit(("t\x00c", 1), [("t\x00r", 1.0, 1.0, 1)], 0.0),
        lambda: store.settle(None, [("t\x00r", 1.0, 1.0, 1)], 0.0),
        lambda: store.get("t\x00r"),
        lambda: store.slots_in_use("t\x00c"),
        lambda: store.clear("t"),
        lambda: cache.add("id", 10.0, 0.0),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailableError) as info:
            call()
        assert info.value.store == "redis"
        assert info.value.retry_after >= 1
        shown = "".join(traceback.format_exception(info.value))
        assert f"127.0.0.1:{port}/0" in str(info.value)
        assert "s3cret-pa55" not in shown
        assert "s3cret-pa55" not in repr(store) + repr(cache)
    store.close()
    store.close()
    cache.close()


def test_a_silent_redis_times_out() -> None:
    """A server that accepts and never answers fails within socket_timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        store = RedisLimiterStore.from_url(
            f"redis://127.0.0.1:{port}/0", socket_timeout=0.3
        )
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="Timeout"):
            store.admit(None, [("t\x00r", 1.0, 1.0, 1)], 0.0)
        assert time.monotonic() - started < 3
        store.close()


@pytest.mark.parametrize(
    "options",
    [
        {"socket_timeout": 0},
        {"connect_timeout": -1.0},
        {"lease_seconds": 0},
        {"lease_seconds": 10.0, "renew_every": 10.0},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    """Timeouts and leases must be positive; renewal comes before the lease runs out."""
    with pytest.raises(InvalidConfigError):
        RedisLimiterStore.from_url("redis://127.0.0.1:6379/0", **options)


def test_only_redis_urls_are_accepted() -> None:
    """Another scheme is refused with a message that names the accepted ones."""
    with pytest.raises(InvalidConfigError, match="redis://"):
        RedisLimiterStore.from_url("http://127.0.0.1:6379/0")


# -- replay cache on Redis's own expiry ---------------------------------------


def test_replay_entries_expire_in_redis(
    target: tuple[str, bool], redis_prefix: str
) -> None:
    """add() is SET NX PX: a replay is refused until the entry's lifetime has passed."""
    url, cluster = target
    cache = RedisReplayCache.from_url(url, cluster=cluster, prefix=redis_prefix)
    try:
        now = time.time()
        assert cache.add("id", now + 0.3, now)
        assert not cache.add("id", now + 100, now)
        assert cache.add("past", now - 1, now)  # already expired: new, not kept
        assert cache.add("past", now + 100, now)
        time.sleep(0.4)
        assert cache.add("id", now + 100, now)
    finally:
        cache.close()


# -- across processes and through a Tenant -------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("slot_limit", "capacity"),
    [(50, 300.0), (1000, 30.0)],
    ids=["slots-bind", "bucket-binds"],
)
def test_processes_racing_admit_never_pass_a_limit(
    redis_url: str, redis_prefix: str, slot_limit: int, capacity: float
) -> None:
    """Four processes admitting at once get exactly the slots or units there are."""
    start, done = SPAWN.Event(), SPAWN.Event()
    results: multiprocessing.Queue[int] = SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=_redis_workers.race_admits,
            args=(
                redis_url,
                redis_prefix,
                (slot_limit, capacity),
                100,
                (start, done),
                results,
            ),
        )
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    store = RedisLimiterStore.from_url(redis_url, prefix=redis_prefix)
    try:
        start.set()
        counts = [results.get(timeout=120) for _ in procs]
        expected = min(slot_limit, int(capacity))
        assert sum(counts) == expected, counts
        assert store.slots_in_use("race\x00c") == expected
        state = store.get("race\x00r")
        assert state is not None
        assert state.level == capacity - expected
    finally:
        done.set()
        for p in procs:
            p.join(30)
        store.clear("")
        store.close()
    assert [p.exitcode for p in procs] == [0] * 4


def test_tenant_and_rate_limiter_end_to_end(
    open_store: Callable[..., RedisLimiterStore],
) -> None:
    """A TenantManager and a RateLimiter on Redis: quotas, budget, concurrency, clear."""
    limits = open_store()
    manager = TenantManager(MemoryTenantStore(), limits=limits)
    manager.create(TenantConfig("acme", "the-key-0123456789", 3, 100, 2))
    tenant = manager.get_by_api_key("the-key-0123456789")
    assert [tenant.allow_request() for _ in range(4)] == [True] * 3 + [False]
    refused = tenant.begin_request(0)  # slots free, request quota spent
    assert not refused.allowed
    assert not refused.concurrency_refused
    assert tenant.in_flight() == 0
    manager.delete("acme")
    manager.create(TenantConfig("acme", "the-key-0123456789", 10, 100, 2))
    tenant = manager.get_by_api_key("the-key-0123456789")
    admissions = [tenant.begin_request(40) for _ in range(3)]
    assert [a.allowed for a in admissions] == [True, True, False]
    assert admissions[2].concurrency_refused
    assert tenant.in_flight() == 2
    tenant.end_request(40, 10)
    tenant.end_request(40, 40)
    assert tenant.in_flight() == 0
    assert tenant.token_quota().remaining == 50
    with ThreadPoolExecutor(8) as pool:
        allowed = list(pool.map(lambda _: tenant.consume_tokens(10), range(8)))
    assert allowed.count(True) == 5
    limiter = RateLimiter(limits)
    rate = Rate(5, 60.0)
    decisions = [limiter.acquire("ip\x00203.0.113.9", rate) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert math.isclose(decisions[-1].retry_after, 12.0, rel_tol=0.01)


def _in_forked_child(
    store: RedisLimiterStore, results: multiprocessing.Queue[object]
) -> None:
    # A forked child: it holds none of its parent's leases, and renews its own.
    store.settle("t\x00c", [], 0.0)  # nothing of its own to give back
    taken = store.admit(("t\x00c", 3), [], 0.0)[0]
    time.sleep(1.5)  # past the lease: only renewal keeps it
    results.put((taken, store.slots_in_use("t\x00c"), store.renew()))
    store.settle("t\x00c", [], 0.0)  # its own, not the parent's
    store.close()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads
def test_a_forked_child_holds_none_of_its_parents_leases(
    open_store: Callable[..., RedisLimiterStore],
) -> None:
    """After fork, settle in the child frees nothing of the parent's; its own leases renew."""
    store = open_store(lease_seconds=1.0, renew_every=0.2)
    assert store.admit(("t\x00c", 3), [], 0.0)[0]
    fork = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[object] = fork.Queue()
    child = fork.Process(target=_in_forked_child, args=(store, results))
    child.start()
    assert results.get(timeout=30) == (True, 2, 1)
    child.join(30)
    assert child.exitcode == 0
    assert store.slots_in_use("t\x00c") == 1  # the parent's lease, renewed throughout


def test_buckets_that_never_refill_never_expire(
    open_store: Callable[..., RedisLimiterStore],
) -> None:
    """With Redis's clock (expiry on), a per_second=0 bucket is kept without a TTL: no division by zero, no early expiry."""
    store = open_store()
    assert store.admit(None, [("t\x00m", 100.0, 0.0, 40)], time.time())[1]
    assert store.admit(None, [("t\x00r", 100.0, 1.0, 40)], time.time())[1]
    assert store.settle(None, [("t\x00m", 100.0, 0.0, -70)], time.time()) == [-10.0]
    client = store.connection.client
    assert client.pttl(store._keys.key("b", "t\x00m")) == -1
    assert 0 < client.pttl(store._keys.key("b", "t\x00r")) <= 41_000
    state = store.get("t\x00m")
    assert state is not None
    assert state.level == -10.0
