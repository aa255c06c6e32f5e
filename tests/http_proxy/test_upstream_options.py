"""
The upstream pool's timeouts and size, against real servers: uvicorn
upstreams on 127.0.0.1, raw sockets that never answer or never read, and
``zerfoo-cloud serve`` with its ``--upstream-*`` options.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests._serving import free_port, serve_command, uvicorn_command
from tests.http_proxy.test_proxy import echo_scope, serve
from tests.test_serve import cli, running
from zerfoo_cloud._upstream_options import UpstreamOptions
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http._proxy_types import Message, Receive, Scope, Send
from zerfoo_cloud.http.proxy import UpstreamProxy
from zerfoo_cloud.serve import ServeConfig

pytestmark = pytest.mark.slow

WAIT = 5.0  # the bound on every wait in this module, in seconds
HOLD = 1.0  # how long the upstream's /hold route takes


async def upstream(scope: Scope, receive: Receive, send: Send) -> None:
    """``/hold`` answers after `HOLD` seconds; every route names the client port."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"].endswith("/hold"):
        await asyncio.sleep(HOLD)
    body = json.dumps({"port": scope["client"][1]}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with serve(upstream) as url:
        yield url


def _at_once(url: str, count: int) -> tuple[list[httpx.Response], float]:
    """*count* requests for ``/v1/hold`` sent together; their answers, and how long all took."""
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.get(f"{url}/v1/hold", timeout=WAIT * 2), range(count)
            )
        )
    return answers, time.monotonic() - started


# --- max_connections and pool_timeout --------------------------------------


def test_requests_up_to_max_connections_run_together(upstream_url: str) -> None:
    """With max_connections=3, three requests run at once: all three take one hold."""
    proxy = UpstreamProxy(upstream_url, max_connections=3, pool_timeout=WAIT)
    with serve(proxy) as url:
        answers, took = _at_once(url, 3)
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert took < 2 * HOLD
    assert proxy.stats().upstream_busy == 0


def test_one_past_max_connections_waits_for_a_free_one(upstream_url: str) -> None:
    """With max_connections=2, a third request waits for a free connection, then runs."""
    proxy = UpstreamProxy(upstream_url, max_connections=2, pool_timeout=WAIT)
    with serve(proxy) as url:
        answers, took = _at_once(url, 3)
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert took >= 2 * HOLD
    assert proxy.stats().upstream_busy == 0


def test_one_past_max_connections_and_the_pool_timeout_is_503(
    upstream_url: str,
) -> None:
    """With max_connections=2 and a short pool_timeout, the third of three gets 503 upstream_busy."""
    proxy = UpstreamProxy(upstream_url, max_connections=2, pool_timeout=HOLD / 5)
    with serve(proxy) as url:
        answers, _ = _at_once(url, 3)
        after = httpx.get(f"{url}/v1/hold", timeout=WAIT)
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200, 200, 503]
    busy = next(answer for answer in answers if answer.status_code == 503)
    assert busy.json()["error"]["code"] == "upstream_busy"
    assert after.status_code == 200
    assert proxy.stats().upstream_busy == 1


# --- keepalive_timeout -------------------------------------------------------


def test_an_idle_connection_is_reused_until_the_keepalive_timeout(
    upstream_url: str,
) -> None:
    """Requests in quick succession share one upstream connection; one after keepalive_timeout opens another."""
    proxy = UpstreamProxy(upstream_url, keepalive_timeout=0.3)
    with serve(proxy) as url, httpx.Client(timeout=WAIT) as client:
        first = client.get(f"{url}/v1/port").json()["port"]
        second = client.get(f"{url}/v1/port").json()["port"]
        time.sleep(1.0)
        third = client.get(f"{url}/v1/port").json()["port"]
    assert first == second
    assert third != first


# --- connect_timeout and write_timeout ---------------------------------------


def test_connect_timeout_is_504(tmp_path: Path) -> None:
    """An upstream whose listen queue is full never completes the connect: 504 after connect_timeout."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    # Fill the accept queue: further connection attempts are not answered.
    fillers = []
    for _ in range(4):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    proxy = UpstreamProxy(f"http://127.0.0.1:{port}", connect_timeout=0.3)
    try:
        with serve(proxy) as url:
            started = time.monotonic()
            response = httpx.get(f"{url}/v1/models", timeout=WAIT)
            took = time.monotonic() - started
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert 0.3 <= took < WAIT
    assert proxy.stats().upstream_timeout == 1


def test_write_timeout_is_504_when_the_upstream_stops_reading() -> None:
    """A streamed body to an upstream that never reads it stalls, and write_timeout ends it with 504."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]))
    thread.start()
    port = listener.getsockname()[1]
    sent: list[Message] = []
    chunk = b"x" * (1024 * 1024)

    async def receive() -> Message:
        await asyncio.sleep(0)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    async def run() -> float:
        proxy = UpstreamProxy(
            f"http://127.0.0.1:{port}", write_timeout=0.3, read_timeout=WAIT * 4
        )
        scope = echo_scope()
        started = time.monotonic()
        try:
            with anyio.fail_after(WAIT * 2):
                await proxy(scope, receive, send)
        finally:
            await proxy.aclose()
        assert proxy.stats().upstream_timeout == 1
        return time.monotonic() - started

    try:
        took = anyio.run(run)
    finally:
        thread.join(timeout=WAIT)
        for conn in accepted:
            conn.close()
        listener.close()
    assert sent[0]["status"] == 504
    assert json.loads(sent[1]["body"])["error"]["code"] == "upstream_timeout"
    assert took < WAIT


# --- the options checked, for the constructor and for serve -------------------


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_keepalive_timeout_must_be_positive(value: float) -> None:
    """keepalive_timeout of zero, below zero or NaN is refused; the smallest positive one is accepted."""
    with pytest.raises(InvalidConfigError) as raised:
        UpstreamProxy("http://h", keepalive_timeout=value)
    assert raised.value.field == "keepalive_timeout"
    UpstreamProxy("http://h", keepalive_timeout=1e-9)


@pytest.mark.parametrize(
    ("option", "bad", "smallest"),
    [
        ("upstream_connect_timeout", 0.0, 1e-9),
        ("upstream_read_timeout", -1.0, 1e-9),
        ("upstream_write_timeout", float("nan"), 1e-9),
        ("upstream_pool_timeout", 0.0, 1e-9),
        ("upstream_keepalive_timeout", 0.0, 1e-9),
        ("upstream_max_connections", 0, 1),
    ],
)
def test_serve_config_checks_the_upstream_options(
    option: str, bad: float, smallest: float
) -> None:
    """ServeConfig refuses an upstream option out of range, accepts the smallest in range, and round-trips it."""
    bad_options: dict[str, Any] = {option: bad}
    with pytest.raises(InvalidConfigError) as raised:
        ServeConfig(db="x", upstream="http://u", **bad_options)
    assert raised.value.field == option.removeprefix("upstream_")
    options: dict[str, Any] = {option: smallest}
    config = ServeConfig(db="x", upstream="http://u", **options)
    env = {"ZERFOO_CLOUD_SERVE_CONFIG": config.to_env()}
    assert ServeConfig.from_env(env) == config
    assert getattr(config.upstream_options(), option.removeprefix("upstream_")) == (
        smallest
    )


def test_the_defaults_are_one_set() -> None:
    """The proxy's, serve's and UpstreamOptions' defaults are the same."""
    config = ServeConfig(db="x", upstream="http://u")
    assert config.upstream_options() == UpstreamOptions()
    assert UpstreamProxy("http://h")._options == UpstreamOptions()


@pytest.mark.parametrize(
    "args",
    [
        ["--upstream-max-connections", "0"],
        ["--upstream-read-timeout", "0"],
        ["--upstream-keepalive-timeout", "-1"],
    ],
)
def test_serve_refuses_an_out_of_range_upstream_option(
    tmp_path: Path, args: list[str]
) -> None:
    """serve exits with a usage error, before serving, on an upstream option out of range."""
    done = cli(tmp_path / "db", "serve", "--upstream", "http://127.0.0.1:9", *args)
    assert done.returncode == 2, done.stderr
    assert args[0] in done.stderr


def test_serve_applies_the_pool_options(tmp_path: Path) -> None:
    """serve --upstream-max-connections 1 --upstream-pool-timeout: a second request at once gets 503."""
    db = tmp_path / "db"
    key = json.loads(cli(db, "tenant", "create", "acme", "--json").stdout)["api_key"]
    up_port, port = free_port(), free_port()
    upstream_cmd = uvicorn_command(
        "tests.http_proxy.test_upstream_options:upstream",
        up_port,
        "--log-level",
        "warning",
    )
    server = serve_command(
        db,
        "--upstream",
        f"http://127.0.0.1:{up_port}",
        "--upstream-max-connections",
        "1",
        "--upstream-pool-timeout",
        str(HOLD / 5),
        "--port",
        str(port),
    )
    root = Path(__file__).resolve().parents[2]
    headers = {"Authorization": f"Bearer {key}"}
    with (
        running(upstream_cmd, up_port, cwd=root),
        running(server, port, cwd=tmp_path) as url,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        answers = list(
            pool.map(
                lambda _: httpx.get(f"{url}/v1/hold", headers=headers, timeout=WAIT),
                range(2),
            )
        )
    assert sorted(answer.status_code for answer in answers) == [200, 503]
