"""
What the asyncio side of the Redis limiter store promises beyond the
conformance suite (which runs it too, as ``redis-async``): one round trip
per admission and per settlement, one client per event loop, a forked child
that never shares its parent's sockets, leases shared with the sync path,
and a Redis that is down or silent failing each call with
`StoreUnavailableError` within the timeout, never the password.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests._loop_ticks import ticking
from tests._redis_servers import missing
from zerfoo_cloud.errors import StoreError, StoreUnavailableError
from zerfoo_cloud.stores.memory import MemoryLimiterStore
from zerfoo_cloud.stores.protocols import AsyncLimiterStore, LimiterStore
from zerfoo_cloud.stores.redis import RedisConnection, RedisLimiterStore

pytestmark = pytest.mark.redis

BUCKETS = [("t\x00req", 1000.0, 0.0, 1), ("t\x00tok", 1e6, 0.0, 100)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of this module's own, so its command counts are ours alone."""
    if not shutil.which("redis-server"):
        missing("redis-server is not installed: install Redis 7 to run these tests")
    port = _free_port()
    folder: Path = tmp_path_factory.mktemp("own-redis")
    proc = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(folder)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _commands(url: str) -> dict[str, int]:
    # Calls per command on the Redis at *url* (INFO commandstats).
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name: int(value["calls"]) for name, value in stats.items()}


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Iterator[RedisLimiterStore]:
    """A store on the Redis at 6379 (Redis's clock)."""
    opened = RedisLimiterStore.from_url(redis_url, prefix=redis_prefix)
    yield opened
    opened.close()
    cleaner = RedisLimiterStore.from_url(redis_url, prefix=redis_prefix)
    cleaner.clear("")
    cleaner.close()


def test_redis_is_an_async_limiter_store_memory_is_not() -> None:
    """The asyncio twins are declared by the protocol; memory has none."""
    assert issubclass(RedisLimiterStore, AsyncLimiterStore)
    assert issubclass(RedisLimiterStore, LimiterStore)
    assert not isinstance(MemoryLimiterStore(), AsyncLimiterStore)


def test_one_round_trip_per_admission_and_settlement(own_redis: str) -> None:
    """N admissions and N settlements are 2N EVALSHA calls and nothing else."""
    store = RedisLimiterStore.from_url(own_redis, prefix="zc-rt:")

    async def main(n: int) -> None:
        try:
            for _ in range(n):
                ok = await store.admit_async(("t\x00con", 10), BUCKETS, 0.0)
                assert ok[1]
                await store.settle_async("t\x00con", BUCKETS[1:], 0.0)
        finally:
            await store.async_connection.aclose()  # type: ignore[union-attr]

    asyncio.run(main(1))  # loads the scripts (an EVAL the first time)
    before = _commands(own_redis)
    asyncio.run(main(100))
    after = _commands(own_redis)
    store.close()
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k)}
    assert delta.pop("cmdstat_evalsha") == 200
    # Besides: what the scripts ran inside (counted by Redis too), and
    # opening the two connections (the client's, _commands').
    inside = {
        "time",
        "get",
        "set",
        "pexpire",
        "zadd",
        "zrem",
        "zremrangebyscore",
        "zcard",
    }
    assert {k.removeprefix("cmdstat_") for k in delta} <= inside | {
        "hello",
        "client|setinfo",
        "info",
    }
    assert delta.get("cmdstat_hello", 0) <= 2


def test_concurrent_calls_share_trips_on_a_few_connections(own_redis: str) -> None:
    """500 admissions at once: 500 EVALSHA, exactly the limit passes, over at most 4 connections."""
    store = RedisLimiterStore.from_url(own_redis, prefix="zc-lanes:")
    client = redis.Redis.from_url(own_redis)
    seen: list[int] = []

    async def main() -> list[bool]:
        async def connections() -> None:
            while True:
                seen.append(len(client.client_list()))
                await asyncio.sleep(0)

        watcher = asyncio.ensure_future(connections())
        try:
            await store.admit_async(None, [("w\x00r", 1.0, 0.0, 0)], 0.0)
            answers = await asyncio.gather(
                *[
                    store.admit_async(None, [("k\x00r", 300.0, 0.0, 1)], 0.0)
                    for _ in range(500)
                ]
            )
            return [a[1] for a in answers]
        finally:
            watcher.cancel()
            await store.async_connection.aclose()  # type: ignore[union-attr]

    before = _commands(own_redis)
    try:
        allowed = asyncio.run(main())
    finally:
        store.clear("")
        store.close()
        client.close()
    after = _commands(own_redis)
    assert sum(allowed) == 300
    assert after["cmdstat_evalsha"] - before["cmdstat_evalsha"] == 501
    assert seen
    assert max(seen) <= 4 + 1  # the lanes, and the watcher's own


@pytest.mark.parametrize("concurrent", [1, 50])
def test_scripts_flushed_from_redis_are_loaded_again(
    own_redis: str, concurrent: int
) -> None:
    """After SCRIPT FLUSH (a restarted Redis) every call still answers rightly."""
    store = RedisLimiterStore.from_url(own_redis, prefix=f"zc-flush{concurrent}:")
    client = redis.Redis.from_url(own_redis)

    async def main() -> list[bool]:
        try:
            await store.admit_async(None, [("w\x00r", 1.0, 0.0, 0)], 0.0)
            client.script_flush()
            answers = await asyncio.gather(
                *[
                    store.admit_async(None, [("f\x00r", 30.0, 0.0, 1)], 0.0)
                    for _ in range(concurrent)
                ]
            )
            return [a[1] for a in answers]
        finally:
            await store.async_connection.aclose()  # type: ignore[union-attr]

    try:
        assert asyncio.run(main()) == [True] * min(concurrent, 30) + [False] * max(
            0, concurrent - 30
        )
    finally:
        store.clear("")
        store.close()
        client.close()


def test_one_failing_call_fails_alone_in_a_shared_trip(own_redis: str) -> None:
    """A script error (a key of the wrong type) fails its own call; the others in its trip pass."""
    store = RedisLimiterStore.from_url(own_redis, prefix="zc-wrong:")
    client = redis.Redis.from_url(own_redis)
    client.rpush(b"zc-wrong:{gbad}bbad\x00r", b"not a bucket")

    async def main() -> list[object]:
        try:
            calls = [
                store.admit_async(None, [(f"{name}\x00r", 10.0, 0.0, 1)], 0.0)
                for name in ("ok1", "bad", "ok2")
            ]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await store.async_connection.aclose()  # type: ignore[union-attr]

    try:
        first, bad, last = asyncio.run(main())
    finally:
        client.delete(b"zc-wrong:{gbad}bbad\x00r")
        store.clear("")
        store.close()
        client.close()
    assert first == (True, True, [9.0])
    assert last == (True, True, [9.0])
    assert type(bad) is StoreError
    assert "WRONGTYPE" in str(bad)


def test_each_event_loop_has_its_own_client(store: RedisLimiterStore) -> None:
    """Loops in two threads admit at once; exactly the limit passes, on two clients."""
    passed: list[bool] = []
    clients: list[object] = []

    async def admit_many() -> None:
        try:
            answers = await asyncio.gather(
                *[
                    store.admit_async(None, [("k\x00r", 150.0, 0.0, 1)], 0.0)
                    for _ in range(100)
                ]
            )
            passed.extend(a[1] for a in answers)
            clients.append(store.async_connection._client())  # type: ignore[union-attr]
        finally:
            await store.async_connection.aclose()  # type: ignore[union-attr]

    threads = [
        threading.Thread(target=asyncio.run, args=(admit_many(),)) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(passed) == 150
    assert len(passed) == 200
    assert len(clients) == 2
    assert clients[0] is not clients[1]


def test_a_lease_taken_async_is_given_back_sync_and_the_other_way(
    store: RedisLimiterStore,
) -> None:
    """Both paths share the lease bookkeeping."""

    async def main() -> None:
        try:
            assert (await store.admit_async(("t\x00con", 2), [], 0.0))[0]
            store.settle("t\x00con", [], 0.0)
            assert store.slots_in_use("t\x00con") == 0
            assert store.admit(("t\x00con", 2), [], 0.0)[0]
            await store.settle_async("t\x00con", [], 0.0)
            assert store.slots_in_use("t\x00con") == 0
            # Nothing held: a settle gives back no other store's lease.
            other = store.admit(("t\x00con", 2), [], 0.0)
            assert other[0]
            await store.settle_async("t\x00con", [], 0.0)
            await store.settle_async("t\x00con", [], 0.0)
            assert store.slots_in_use("t\x00con") == 0
        finally:
            await store.async_connection.aclose()  # type: ignore[union-attr]

    asyncio.run(main())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_makes_its_own_client(store: RedisLimiterStore) -> None:
    """A child forked while the parent's loop holds a client makes its own; both work."""
    connection = store.async_connection
    assert connection is not None
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def admit() -> bool:
        call = store.admit_async(("t\x00con", 5), [], 0.0)
        return asyncio.run_coroutine_threadsafe(call, loop).result(10)[0]

    try:
        assert admit()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports by exit code
            code = 1
            try:

                async def child() -> bool:
                    try:
                        return (await store.admit_async(("t\x00con", 5), [], 0.0))[0]
                    finally:
                        await connection.aclose()

                if not connection._clients and asyncio.run(child()):
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's client is intact: its next call answers rightly.
        assert admit()
        assert store.slots_in_use("t\x00con") == 3
    finally:
        store.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_unreachable_redis_is_store_unavailable_without_the_password() -> None:
    """Nothing listens: StoreUnavailableError naming host and port, never the password."""
    port = _free_port()
    store = RedisLimiterStore.from_url(
        f"redis://:s3cret-pw@127.0.0.1:{port}/0", connect_timeout=0.5
    )

    async def main() -> None:
        try:
            with pytest.raises(StoreUnavailableError) as caught:
                await store.admit_async(("t\x00con", 2), BUCKETS, 0.0)
            assert f"127.0.0.1:{port}" in str(caught.value)
            assert "s3cret-pw" not in str(caught.value)
            assert caught.value.store == "redis"
            assert caught.value.retry_after >= 1
            with pytest.raises(StoreUnavailableError):
                await store.settle_async(None, BUCKETS, 0.0)
        finally:
            await store.async_connection.aclose()  # type: ignore[union-attr]

    asyncio.run(main())
    store.close()


def test_a_silent_redis_fails_within_the_timeout_and_the_loop_runs_on() -> None:
    """A server that never answers: the call fails after socket_timeout; the loop ticks meanwhile."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(100)  # connections complete in the backlog; nothing answers
        port = silent.getsockname()[1]
        store = RedisLimiterStore.from_url(
            f"redis://127.0.0.1:{port}/0", socket_timeout=0.5, connect_timeout=0.5
        )

        async def main() -> tuple[float, int]:
            started = time.monotonic()
            try:
                async with ticking() as ticks:
                    with pytest.raises(StoreUnavailableError):
                        await store.admit_async(("t\x00con", 2), BUCKETS, 0.0)
                return time.monotonic() - started, ticks.count
            finally:
                await store.async_connection.aclose()  # type: ignore[union-attr]

        took, ticks = asyncio.run(main())
        store.close()
    assert 0.4 < took < 2.0
    assert ticks >= 20  # the loop ran other work the whole time


def test_a_closed_store_refuses_async_calls(store: RedisLimiterStore) -> None:
    """After close, the asyncio calls raise StoreError; nothing is sent."""
    store.close()

    async def main() -> None:
        with pytest.raises(StoreError, match="closed"):
            await store.admit_async(None, BUCKETS, 0.0)

    asyncio.run(main())


def test_a_store_on_an_opened_connection_gets_its_asyncio_twin(
    redis_url: str, redis_prefix: str
) -> None:
    """RedisLimiterStore(connection) on RedisConnection.from_url has the asyncio path too."""
    connection, _ = RedisConnection.from_url(redis_url, {"socket_timeout": 2.0})
    store = RedisLimiterStore(connection, prefix=redis_prefix)
    twin = store.async_connection
    assert twin is not None
    assert twin._timeouts["socket_timeout"] == 2.0

    async def main() -> tuple[bool, bool, list[float]]:
        try:
            return await store.admit_async(None, [("t\x00r", 5.0, 0.0, 1)], 0.0)
        finally:
            await twin.aclose()

    try:
        assert asyncio.run(main()) == (True, True, [4.0])
    finally:
        store.clear("")
        store.close()


def test_a_store_on_a_bare_client_runs_its_sync_calls_off_the_loop(
    redis_url: str, redis_prefix: str
) -> None:
    """No asyncio connection: admit_async and settle_async run the sync calls in a worker thread."""
    client = redis.Redis.from_url(redis_url)
    store = RedisLimiterStore(
        RedisConnection(client, "127.0.0.1:6379/0", None), prefix=redis_prefix
    )
    assert store.async_connection is None
    loop_thread: list[int] = []
    guard = store.connection.guard

    def spy(what: str) -> Any:
        # Each sync call into Redis, from a thread other than the loop's.
        assert threading.get_ident() not in loop_thread
        return guard(what)

    store.connection.guard = spy  # type: ignore[method-assign]

    async def main() -> None:
        loop_thread.append(threading.get_ident())
        assert (await store.admit_async(("t\x00c", 1), [], 0.0))[0]
        assert not (await store.admit_async(("t\x00c", 1), [], 0.0))[0]
        await store.settle_async("t\x00c", [], 0.0)

    try:
        asyncio.run(main())
        store.connection.guard = guard  # type: ignore[method-assign]
        assert store.slots_in_use("t\x00c") == 0
    finally:
        store.clear("")
        store.close()
