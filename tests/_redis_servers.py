"""
Redis for the tests: the one on 127.0.0.1:6379, a 3-node Redis Cluster
started from the installed ``redis-server`` in a temporary folder, and a
Redis of a test's own that it may kill, restart or reconfigure.

Without them the tests that need them skip with one line saying what to
start; with ``CI`` set they fail instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

#: The Redis the tests use, and the command that starts it.
REDIS_URL = "redis://127.0.0.1:6379/0"
START_REDIS = "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no"


def missing(what: str) -> None:
    """Skip the test (fail it when ``CI`` is set): *what* is not available."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI is set: Redis tests may not skip)")
    pytest.skip(what)


def single_redis_up() -> bool:
    """Whether a Redis answers on 127.0.0.1:6379."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    # A port free for the node and for its cluster bus (port + 10000).
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port + 10000 < 65536 and _bindable(port + 10000):
            return port
    msg = "no free port pair for a Redis Cluster node"
    raise RuntimeError(msg)


def _answers(port: int, command: tuple[str, ...], expected: str) -> bool:
    return expected in _cli(port, *command)


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


@contextmanager
def redis_cluster(folder: Path) -> Iterator[str]:
    """
    Start a 3-node Redis Cluster (no replicas) in *folder*; yield a node's URL.

    Every node is shut down and its files removed afterwards.
    """
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        missing(
            "redis-server is not installed: install Redis 7 to run the cluster tests"
        )
    ports: list[int] = []
    procs = []
    try:
        for n in range(3):
            proc, port = start_redis_anywhere(
                folder / f"node{n}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            )
            procs.append(proc)
            ports.append(port)
        _cli(
            ports[0],
            "--cluster",
            "create",
            *[f"127.0.0.1:{p}" for p in ports],
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        )
        for port in ports:
            _wait(
                functools.partial(
                    _answers, port, ("cluster", "info"), "cluster_state:ok"
                )
            )
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            _stop(proc)


def _ready(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (subprocess.CalledProcessError, OSError):
        return False


def _wait(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not _ready(check):
        if time.monotonic() > deadline:
            msg = "the Redis Cluster did not start"
            raise RuntimeError(msg)
        time.sleep(0.05)


#: The Redis backends: a single Redis and a 3-node Redis Cluster.
REDIS_PARAMS = [
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param("redis-cluster", marks=pytest.mark.redis, id="redis-cluster"),
]

#: The same, driven through the stores' asyncio calls.
REDIS_ASYNC_PARAMS = [
    pytest.param("redis-async", marks=pytest.mark.redis, id="redis-async"),
    pytest.param(
        "redis-cluster-async", marks=pytest.mark.redis, id="redis-cluster-async"
    ),
]


def redis_target(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """
    ``(url, cluster)`` of the Redis backend *request* is parametrized with.
    """
    if request.param in {"redis", "redis-async"}:
        return request.getfixturevalue("redis_url"), False
    return request.getfixturevalue("redis_cluster_url"), True


@contextmanager
def own_redis(folder: Path, port: int | None = None) -> Iterator[tuple[str, int]]:
    """
    Start a Redis of the test's own on *port* (a free one by default) in
    *folder*, one the test may kill, stop or reconfigure; yield its URL and
    port. It is shut down afterwards.
    """
    if port is None:
        proc, port = start_redis_anywhere(folder)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        proc = start_redis(folder, port)
    try:
        yield f"redis://127.0.0.1:{port}/0", port
    finally:
        proc.terminate()
        _stop(proc)


def start_redis_anywhere(
    folder: Path, *options: str
) -> tuple[subprocess.Popen[bytes], int]:
    """
    Start ``redis-server`` (see `start_redis`) on a free port, trying
    another when a process elsewhere takes the chosen one first; return it
    and its port. Skips (fails under ``CI``) without ``redis-server``.
    """
    if not shutil.which("redis-server"):
        missing("redis-server is not installed: install Redis 7 to run this test")
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(5):
        port = _free_port()
        try:
            return start_redis(folder, port, *options), port
        except RuntimeError:
            if attempt == 4:
                raise
    raise AssertionError  # pragma: no cover - the loop returns or raises


def start_redis(folder: Path, port: int, *options: str) -> subprocess.Popen[bytes]:
    """
    Start ``redis-server`` on *port* (no persistence unless *options* ask
    for it, files in *folder*) and wait until it answers; it must be this
    process that answers, not another Redis that took the port first.

    Raises:
        RuntimeError: it did not start (the port is taken).
    """
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ours() -> bool:
        if proc.poll() is not None:
            msg = f"redis-server could not start on port {port}"
            raise RuntimeError(msg)
        return _answers(port, ("info", "server"), f"process_id:{proc.pid}\n")

    try:
        _wait(ours)
    except BaseException:
        proc.kill()
        _stop(proc)
        raise
    return proc
