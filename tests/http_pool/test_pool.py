"""
`PooledProxy` behind a real `CloudServer`, in front of real replicas
(uvicorn in threads): routing by model, discovery, balancing, ejection and
recovery, retries only before anything was sent, timeouts, streams cut short,
and the pool's own model list.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from tests.http._support import (
    AUTH,
    CHAT,
    KEY,
    OTHER_KEY,
    Stack,
    serve_asgi,
    wait_until,
)
from tests.http_pool._replicas import STREAM_CHUNKS, ReplicaApp, ReplicaServer
from zerfoo_cloud import CloudServer
from zerfoo_cloud._pool_options import PoolOptions
from zerfoo_cloud._upstream_metrics import UpstreamMetrics
from zerfoo_cloud._upstream_options import UpstreamOptions
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http.pooled_proxy import PooledProxy

#: Quick health settings, so ejection and recovery happen within a test.
FAST: dict[str, Any] = {
    "eject_after": 2,
    "eject_cooldown": 0.2,
    "probe_interval": 0.05,
    "probe_timeout": 1.0,
    "connect_timeout": 1.0,
}


def _body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture
def stack() -> Iterator[Stack]:
    made = Stack()
    made.tenant()
    yield made
    made.close()


@contextlib.contextmanager
def replicas(*apps: ReplicaApp) -> Iterator[list[ReplicaServer]]:
    servers = [ReplicaServer(app).start() for app in apps]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


@contextlib.contextmanager
def pooled(
    stack: Stack, specs: list[str], **options: Any
) -> Iterator[tuple[str, PooledProxy, CloudServer]]:
    proxy = PooledProxy(specs, **{**FAST, **options})
    server = stack.server(proxy, interface="asgi")
    with serve_asgi(server.handler(), lifespan=True) as url:
        yield url, proxy, server


def _chat(url: str, model: str, key: str = KEY, **extra: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(
        url + CHAT, json=_body(model, **extra), headers=headers, timeout=10
    )


def test_each_model_goes_to_the_replicas_that_list_it(stack: Stack) -> None:
    a, b = ReplicaApp("a", ["llama"]), ReplicaApp("b", ["qwen"])
    with replicas(a, b) as (ra, rb), pooled(stack, [ra.url, rb.url]) as (url, _, _):
        for model, name in [("llama", "a"), ("qwen", "b"), ("llama", "a")]:
            response = _chat(url, model)
            assert response.status_code == 200
            assert response.json()["served_by"] == name
    assert (len(a.seen), len(b.seen)) == (2, 1)


def test_an_explicit_model_map_routes_without_a_model_list(stack: Stack) -> None:
    a, b = ReplicaApp("a", []), ReplicaApp("b", [])
    with (
        replicas(a, b) as (ra, rb),
        pooled(stack, [f"llama=={ra.url}", f"qwen={rb.url}"]) as (url, _, _),
    ):
        assert _chat(url, "llama=").json()["served_by"] == "a"
        assert _chat(url, "qwen").json()["served_by"] == "b"


def test_a_model_no_replica_serves_is_404_and_reaches_none(stack: Stack) -> None:
    a = ReplicaApp("a", ["llama"])
    with replicas(a) as (ra,), pooled(stack, [ra.url]) as (url, _, server):
        response = _chat(url, "gpt-unknown")
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "model_not_found"
        assert error["type"] == "invalid_request_error"
        assert error["request_id"] == response.headers["x-request-id"]
    assert a.seen == []
    assert [(r.input_tokens, r.output_tokens) for r in stack.billing.all()] == [(0, 0)]
    assert [e.status_code for e in stack.audits(server)] == [404]


def test_the_model_list_is_the_union_seen_through_the_allow_list(stack: Stack) -> None:
    stack.tenant("narrow", OTHER_KEY, model_allow_list=("llama", "shared"))
    a = ReplicaApp("a", ["llama", "shared"])
    b = ReplicaApp("b", ["qwen", "shared"])
    with replicas(a, b) as (ra, rb), pooled(stack, [ra.url, rb.url]) as (url, _, _):
        wide = httpx.get(url + "/v1/models", headers=AUTH, timeout=10).json()
        assert [m["id"] for m in wide["data"]] == ["llama", "qwen", "shared"]
        assert wide["data"][0]["owned_by"] == "a"
        narrow_auth = {"authorization": f"Bearer {OTHER_KEY}"}
        narrow = httpx.get(url + "/v1/models", headers=narrow_auth, timeout=10).json()
        assert [m["id"] for m in narrow["data"]] == ["llama", "shared"]
        one = httpx.get(url + "/v1/models/qwen", headers=AUTH, timeout=10)
        assert one.json()["id"] == "qwen"
        hidden = httpx.get(url + "/v1/models/qwen", headers=narrow_auth, timeout=10)
        assert hidden.status_code == 404
        missing = httpx.get(url + "/v1/models/nope", headers=AUTH, timeout=10)
        assert missing.json()["error"]["code"] == "model_not_found"
        # A duplicate id across replicas is listed once; one at a time, its
        # requests go to the first replica (a tie on zero in flight).
        served = [_chat(url, "shared").json()["served_by"] for _ in range(3)]
    assert served == ["a", "a", "a"]
    assert (a.listed, b.listed) >= (1, 1)


def test_discovery_reads_the_model_lists_again(stack: Stack) -> None:
    a = ReplicaApp("a", ["old"])
    with (
        replicas(a) as (ra,),
        pooled(stack, [ra.url], discovery_interval=0.1) as (url, _, _),
    ):
        assert _chat(url, "new").status_code == 404
        a.models = ["old", "new"]
        assert wait_until(lambda: _chat(url, "new").status_code == 200)
        a.models = ["new"]
        assert wait_until(lambda: _chat(url, "old").status_code == 404)


def test_requests_go_to_the_replica_with_the_fewest_in_flight(stack: Stack) -> None:
    apps = [ReplicaApp(name, ["m"]) for name in "abc"]
    holds = [threading.Event() for _ in apps]
    for app, hold in zip(apps, holds, strict=True):
        app.hold = hold
    with (
        replicas(*apps) as servers,
        pooled(stack, [s.url for s in servers]) as (url, proxy, _),
        concurrent.futures.ThreadPoolExecutor(12) as pool,
    ):
        futures = [pool.submit(_chat, url, "m") for _ in range(12)]
        assert wait_until(lambda: sum(app.in_flight for app in apps) == 12)
        assert [app.in_flight for app in apps] == [4, 4, 4]
        assert [r.outstanding for r in proxy.pool.replicas] == [4, 4, 4]
        # One replica finishes its share: the next requests go to it.
        holds[0].set()
        assert wait_until(lambda: apps[0].in_flight == 0)
        holds[0].clear()
        more = [pool.submit(_chat, url, "m") for _ in range(3)]
        assert wait_until(lambda: apps[0].in_flight == 3)
        for hold in holds:
            hold.set()
        assert all(f.result().status_code == 200 for f in futures + more)
    assert [len(app.seen) for app in apps] == [7, 4, 4]
    assert [r.outstanding for r in proxy.pool.replicas] == [0, 0, 0]


def test_a_killed_replica_is_ejected_and_readmitted_when_back(stack: Stack) -> None:
    a, b = ReplicaApp("a", ["m"]), ReplicaApp("b", ["m"])
    with replicas(a, b) as (ra, rb), pooled(stack, [ra.url, rb.url]) as (url, proxy, _):
        first, _second = proxy.pool.replicas
        ra.stop()
        # Each request tries the dead replica first, then the other: no
        # client sees the failure.
        for _ in range(2):
            assert _chat(url, "m").json()["served_by"] == "b"
        assert not first.healthy
        assert first.ejections == 1
        assert proxy.pool.ready()  # b still serves m
        for _ in range(3):
            assert _chat(url, "m").json()["served_by"] == "b"
        assert first.requests == 2, "an ejected replica gets no request"
        ra.start()
        assert wait_until(lambda: first.healthy)
        assert _chat(url, "m").json()["served_by"] == "a"
    assert len(b.seen) == 5
    assert len(a.seen) == 1


def test_readiness_flips_with_the_last_replica_of_a_model(stack: Stack) -> None:
    a, b = ReplicaApp("a", ["llama"]), ReplicaApp("b", ["qwen"])
    with (
        replicas(a, b) as (ra, rb),
        pooled(stack, [ra.url, rb.url], eject_after=1, discovery_interval=0.1) as (
            url,
            proxy,
            _,
        ),
    ):
        assert proxy.pool.ready()
        rb.stop()
        # No request needed: the periodic read of the lists notices.
        assert wait_until(lambda: not proxy.pool.ready())
        response = _chat(url, "qwen")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "upstream_unavailable"
        assert response.headers["retry-after"] == "1"
        assert _chat(url, "llama").status_code == 200
        rb.start()
        assert wait_until(proxy.pool.ready)
        assert _chat(url, "qwen").status_code == 200


class _Hangup:
    """A TCP server that reads each request and closes without answering."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                if data.startswith(b"GET /v1/models"):
                    body = json.dumps({"data": [{"id": "m"}]}).encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"connection: close\r\ncontent-length: "
                        + str(len(body)).encode()
                        + b"\r\n\r\n"
                        + body
                    )
                elif data:
                    self.requests += 1


def test_a_request_that_reached_a_replica_is_never_sent_again(stack: Stack) -> None:
    hangup = _Hangup()
    b = ReplicaApp("b", ["m"])
    try:
        with replicas(b) as (rb,), pooled(stack, [hangup.url, rb.url]) as (url, _, _):
            response = _chat(url, "m")
            assert response.status_code == 502
            assert response.json()["error"]["code"] == "upstream_invalid_response"
    finally:
        hangup.sock.close()
    assert hangup.requests == 1
    assert b.seen == []


def test_a_refused_connection_is_retried_and_counted_once(stack: Stack) -> None:
    a, b = ReplicaApp("a", ["m"]), ReplicaApp("b", ["m"])
    with (
        replicas(a, b) as (ra, rb),
        pooled(stack, [ra.url, rb.url], eject_after=5) as (
            url,
            proxy,
            _,
        ),
    ):
        ra.stop()
        assert _chat(url, "m").status_code == 200
        rb.stop()
        response = _chat(url, "m")
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_unavailable"
        assert [r.failures for r in proxy.pool.replicas] == [2, 1]
    assert (len(a.seen), len(b.seen)) == (0, 1)


def test_a_slow_replica_times_out_and_is_not_retried(stack: Stack) -> None:
    a, b = ReplicaApp("a", ["m"]), ReplicaApp("b", ["m"])
    a.delay = 1.0
    with (
        replicas(a, b) as (ra, rb),
        pooled(stack, [ra.url, rb.url], read_timeout=0.2) as (
            url,
            proxy,
            _,
        ),
    ):
        response = _chat(url, "m")
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "upstream_timeout"
        assert proxy.pool.replicas[0].healthy, "a timeout is not a connect failure"
    assert (len(a.seen), len(b.seen)) == (1, 0)


def test_a_model_list_that_comes_late_serves_nothing(stack: Stack) -> None:
    slow = _Silent()
    b = ReplicaApp("b", ["m"])
    try:
        with (
            replicas(b) as (rb,),
            pooled(stack, [slow.url, rb.url], probe_timeout=0.2) as (url, proxy, _),
        ):
            assert proxy.pool.replicas[0].models == frozenset()
            assert _chat(url, "m").json()["served_by"] == "b"
    finally:
        slow.sock.close()


class _Silent:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"


def test_a_stream_cut_short_by_its_replica_is_billed_for_what_was_sent(
    stack: Stack,
) -> None:
    a = ReplicaApp("a", ["m"])
    a.die_after = 3
    with replicas(a) as (ra,), pooled(stack, [ra.url]) as (url, _, server):
        received: list[str] = []
        with (
            pytest.raises(httpx.HTTPError),
            httpx.stream(
                "POST",
                url + CHAT,
                json=_body("m", stream=True),
                headers=AUTH,
                timeout=10,
            ) as response,
        ):
            received.extend(x for x in response.iter_lines() if x.startswith("data:"))
        assert len(received) == 3 < STREAM_CHUNKS
    records = stack.records(server)
    assert [r[2] for r in records] == [3]
    assert len(a.seen) == 1


@pytest.mark.parametrize(
    "listing",
    [
        b"not json",
        b'{"data": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b'{"data": [{"id": "m"}], "pad": "' + b"x" * (2 << 20) + b'"}',
        b'{"data": "m"}',
    ],
    ids=["malformed", "deep", "huge", "not-a-list"],
)
def test_a_replica_with_a_hostile_model_list_serves_nothing(
    stack: Stack, listing: bytes
) -> None:
    hostile, good = ReplicaApp("hostile", []), ReplicaApp("good", ["m"])
    hostile.models_body = listing
    with (
        replicas(hostile, good) as (rh, rg),
        pooled(stack, [rh.url, rg.url]) as (url, proxy, _),
    ):
        models = httpx.get(url + "/v1/models", headers=AUTH, timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["m"]
        assert proxy.pool.replicas[0].healthy, "it answers: only its list is bad"
        for _ in range(3):
            assert _chat(url, "m").json()["served_by"] == "good"
        assert proxy.pool.ready()
    assert hostile.seen == []


def test_a_replica_without_a_model_list_is_readmitted_when_it_answers(
    stack: Stack,
) -> None:
    a = ReplicaApp("a", [])
    a.models_status = 404
    with replicas(a) as (ra,), pooled(stack, [f"m={ra.url}"]) as (url, proxy, _):
        (replica,) = proxy.pool.replicas
        ra.stop()
        for _ in range(2):
            assert _chat(url, "m").status_code == 502
        assert not replica.healthy
        assert _chat(url, "m").status_code == 503
        ra.start()
        assert wait_until(lambda: replica.healthy)
        assert _chat(url, "m").json()["served_by"] == "a"


def test_without_a_policy_in_front_a_request_goes_to_any_replica() -> None:
    a = ReplicaApp("a", ["llama"])
    with (
        replicas(a) as (ra,),
        serve_asgi(PooledProxy([ra.url], **FAST), lifespan=True) as url,
    ):
        response = httpx.post(url + CHAT, json=_body("anything"), timeout=10)
        assert response.json()["served_by"] == "a"
        head = httpx.head(url + "/v1/models", timeout=10)
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) > 0


def test_each_replica_is_counted_in_the_metrics(stack: Stack) -> None:
    registry = CollectorRegistry()
    a, b = ReplicaApp("a", ["m"]), ReplicaApp("b", ["m"])
    with replicas(a, b) as (ra, rb):
        observer = UpstreamMetrics(registry)
        with pooled(stack, [ra.url, rb.url], observer=observer) as (url, _, _):
            ra.stop()
            for _ in range(3):
                assert _chat(url, "m").status_code == 200

    def value(name: str, server: ReplicaServer) -> float | None:
        return registry.get_sample_value(
            f"zerfoo_cloud_{name}", {"upstream": server.url}
        )

    assert value("upstream_requests_total", ra) == 2
    assert value("upstream_errors_total", ra) == 2
    assert value("upstream_ejections_total", ra) == 1
    assert value("upstream_requests_total", rb) == 3
    assert value("upstream_errors_total", rb) is None
    assert value("upstream_request_duration_seconds_count", rb) == 3


def test_health_is_the_pool_readiness_and_the_key_is_never_shown() -> None:
    a = ReplicaApp("a", ["m"])

    async def check(proxy: PooledProxy) -> bool:
        try:
            return await proxy.health()
        finally:
            await proxy.aclose()

    with replicas(a) as (ra,):
        proxy = PooledProxy(
            [ra.url, f"other={free_port_url()}"], api_key="sk-secret", **FAST
        )
        assert "sk-secret" not in repr(proxy)
        assert ra.url in repr(proxy)
        assert asyncio.run(check(PooledProxy([ra.url], **FAST)))
        assert not asyncio.run(check(proxy)), "other has no healthy replica"


def free_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@contextlib.contextmanager
def _full_backlog(port: int) -> Iterator[None]:
    """Listen on *port* with a full accept queue: connecting there times out."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(0)
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        try:
            yield
        finally:
            for filler in fillers:
                filler.close()


def test_a_connect_timeout_is_retried_on_another_replica(stack: Stack) -> None:
    a, b = ReplicaApp("a", ["m"]), ReplicaApp("b", ["m"])
    with (
        replicas(a, b) as (ra, rb),
        pooled(stack, [ra.url, rb.url], connect_timeout=0.3) as (url, proxy, _),
    ):
        assert _chat(url, "m").json()["served_by"] == "a"
        ra.stop()
        with _full_backlog(ra.port):
            started = time.monotonic()
            assert _chat(url, "m").json()["served_by"] == "b"
            assert time.monotonic() - started >= 0.3
        assert proxy.pool.replicas[0].failures == 1
    assert (len(a.seen), len(b.seen)) == (1, 1)


def test_a_client_leaving_mid_stream_frees_its_replica(stack: Stack) -> None:
    a = ReplicaApp("a", ["m"])
    a.chunk_gap = 0.5
    with replicas(a) as (ra,), pooled(stack, [ra.url]) as (url, proxy, _):
        (replica,) = proxy.pool.replicas
        with httpx.stream(
            "POST", url + CHAT, json=_body("m", stream=True), headers=AUTH, timeout=10
        ) as response:
            chunks = response.iter_raw()
            next(chunks)
            assert replica.outstanding == 1
        assert wait_until(lambda: replica.outstanding == 0)
        assert (replica.requests, replica.errors, replica.failures) == (1, 0, 0)
        assert proxy.stats().client_disconnects == 1


def test_probes_and_requests_carry_the_upstream_key_never_the_client_one(
    stack: Stack,
) -> None:
    a = ReplicaApp("a", ["m"])
    with (
        replicas(a) as (ra,),
        pooled(stack, [ra.url], api_key="up-key-1") as (url, _, _),
    ):
        assert _chat(url, "m").status_code == 200
    assert a.listed >= 1
    assert a.keys == {b"Bearer up-key-1"}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_connections": 0}, "max_connections"),
        ({"eject_after": 0}, "eject_after"),
        ({"probe_timeout": 0}, "probe_timeout"),
        ({"read_timeout": -1.0}, "read_timeout"),
    ],
)
def test_each_option_is_checked_by_its_options_class(
    options: dict[str, Any], field: str
) -> None:
    """A replica option and a pool option out of range each name their field."""
    with pytest.raises(InvalidConfigError) as caught:
        PooledProxy(["http://127.0.0.1:9"], **options)
    assert caught.value.field == field


def test_an_unknown_option_is_refused() -> None:
    """A keyword neither options class takes is a TypeError, as any call's."""
    with pytest.raises(TypeError, match="health_pat"):
        PooledProxy(["http://127.0.0.1:9"], health_pat="/x")  # type: ignore[call-arg]


def test_the_options_reach_the_replicas_and_the_pool() -> None:
    """Each keyword lands in its options; one left out keeps its default."""
    proxy = PooledProxy(
        ["http://127.0.0.1:9"], connect_timeout=1.5, max_connections=7, eject_after=9
    )
    assert proxy._options == UpstreamOptions(connect_timeout=1.5, max_connections=7)
    assert proxy.pool.options == PoolOptions(eject_after=9)
