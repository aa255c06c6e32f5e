"""
The proxy's connections to its upstream, counted on this process's own
sockets: every exchange gives its connection back to the pool, whatever
ends it, and a stopped server leaves none open.

A connection left open is not only a ``ResourceWarning`` when the garbage
collector finds it: under load it is a pooled connection the next request
cannot have (503 ``upstream_busy``), and a socket the upstream keeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests._sockets import connections_to
from tests.http._invariant import Service
from tests.http._support import wait_until
from zerfoo_cloud.http._response_meter import ResponseMeter

CHAT = "/v1/chat/completions"
BODY = {"model": "toy-1", "messages": [{"role": "user", "content": "hi"}]}
TIMEOUT = 10.0


def _upstream_port(service: Service) -> int:
    port = urlsplit(service.upstream_url).port
    assert port is not None
    return port


def _boom(*_: object, **__: object) -> object:
    msg = "injected fault"
    raise RuntimeError(msg)


def _chat(service: Service, key: str, mode: str) -> None:
    headers = {"authorization": f"Bearer {key}", "x-test-mode": mode}
    # An upstream failing mid-answer cuts the response short.
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(service.url + CHAT, json=BODY, headers=headers, timeout=TIMEOUT)


def _leave_mid_stream(service: Service, key: str) -> None:
    headers = {"authorization": f"Bearer {key}", "x-test-mode": "stream"}
    with (
        httpx.Client(timeout=TIMEOUT) as client,
        client.stream("POST", service.url + CHAT, json=BODY, headers=headers) as sse,
    ):
        next(sse.iter_raw())


def _get(path: str) -> Callable[[Service, str], None]:
    def get(service: Service, key: str) -> None:
        headers = {"authorization": f"Bearer {key}"}
        httpx.get(service.url + path, headers=headers, timeout=TIMEOUT)

    return get


def _with_fault(mode: str, target: object, name: str) -> Callable[[Service, str], None]:
    def faulty(service: Service, key: str) -> None:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(target, name, _boom)
            _chat(service, key, mode)

    return faulty


def _mode(mode: str) -> Callable[[Service, str], None]:
    return lambda service, key: _chat(service, key, mode)


PATHS: dict[str, Callable[[Service, str], None]] = {
    "answered": _mode("ok"),
    "streamed": _mode("stream"),
    "upstream fails before answering": _mode("raise-before"),
    "upstream fails mid-answer": _mode("raise-after"),
    "absurd usage": _mode("huge-usage"),
    "model list filtered": _get("/v1/models"),
    "one model": _get("/v1/models/toy-1"),
    "refused model": _get("/v1/models/toy-3"),
    "client leaves mid-stream": _leave_mid_stream,
    "metering fails": _with_fault("stream", ResponseMeter, "feed"),
    "usage fails": _with_fault("ok", ResponseMeter, "usage"),
}


@pytest.fixture(scope="module")
def one_connection() -> Iterator[Service]:
    """The proxy stack with a pool of a single upstream connection."""
    with Service("proxy", max_connections=1, pool_timeout=TIMEOUT).running() as run:
        yield run


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
def test_every_exchange_gives_its_upstream_connection_back(
    one_connection: Service, path: Callable[[Service, str], None]
) -> None:
    """Whatever ends an exchange, its pooled connection is free for the next request."""
    service = one_connection
    _, key = service.new_tenant(allow=("toy-1", "toy-2"))
    path(service, key)
    # Another tenant: the path may have spent this one's budget.
    _, other = service.new_tenant()
    after = httpx.post(
        service.url + CHAT,
        json=BODY,
        headers={"authorization": f"Bearer {other}"},
        timeout=TIMEOUT,
    )
    # A connection still held by the exchange leaves the next request waiting
    # for the pool until it gets 503 upstream_busy.
    assert after.status_code == 200, after.text
    assert connections_to(_upstream_port(service)) <= 1


def test_a_stopped_proxy_leaves_no_upstream_connection_open() -> None:
    """When the server in front stops, the proxy's pooled connections are closed."""
    service = Service("proxy")
    with service.running():
        _, key = service.new_tenant(allow=("toy-1",))
        for path in ("model list filtered", "upstream fails mid-answer", "streamed"):
            PATHS[path](service, key)
        _chat(service, key, "ok")
        port = _upstream_port(service)
        # The pool keeps the connection of the last answer open for the next.
        assert connections_to(port) >= 1
    assert wait_until(lambda: connections_to(port) == 0), (
        f"{connections_to(port)} connection(s) to the upstream left open"
    )
