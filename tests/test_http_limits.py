"""
The request-head bounds of `zerfoo_cloud._http_limits` on a real uvicorn,
with both HTTP parsers, through raw sockets.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
import uvicorn

from zerfoo_cloud._http_limits import limited_protocol

PARSERS = ["h11", "httptools"]
LIMIT = 8 * 1024


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI app: reads the body, answers 200 ``ok``."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


@contextmanager
def serving(parser: str, *, timeout: float = 30.0) -> Iterator[int]:
    """A uvicorn with the limited *parser* protocol on a free port, in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        hello,
        http=limited_protocol(
            parser,  # type: ignore[arg-type]
            max_header_bytes=LIMIT,
            header_timeout=timeout,
        ),
        h11_max_incomplete_event_size=LIMIT,
        lifespan="off",
        log_level="critical",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def head_of(size: int, path: str = "/") -> bytes:
    """A GET head of exactly *size* bytes (one padding header)."""
    start = f"GET {path} HTTP/1.1\r\nhost: x\r\nx-pad: ".encode()
    end = b"\r\n\r\n"
    pad = size - len(start) - len(end)
    assert pad > 0
    return start + b"a" * pad + end


def exchange(port: int, data: bytes) -> bytes:
    """Send *data*, read until the server closes or answers one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        with suppress(OSError):
            s.sendall(data)
        return read_response(s)


def read_response(s: socket.socket) -> bytes:
    """Read one response (or until the peer closes)."""
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            if b"\r\n\r\n" in got:
                head, _, body = got.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:") and len(body) >= int(
                        line.split(b":")[1]
                    ):
                        return got
    except ConnectionResetError:
        pass
    return got


@pytest.mark.parametrize("parser", PARSERS)
def test_a_head_at_the_limit_is_served_and_one_byte_more_gets_431(
    parser: str,
) -> None:
    """Finding 6: the head limit holds exactly, with either parser."""
    with serving(parser) as port:
        assert exchange(port, head_of(LIMIT)).startswith(b"HTTP/1.1 200")
        refused = exchange(port, head_of(LIMIT + 1))
        assert refused.startswith(b"HTTP/1.1 431"), refused[:200]
        assert b'"type": "invalid_request_error"' in refused
        # The same head, sent in small pieces, is counted the same way.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            data = head_of(LIMIT + 1)
            for i in range(0, len(data), 1000):
                s.sendall(data[i : i + 1000])
            assert read_response(s).startswith(b"HTTP/1.1 431")


@pytest.mark.parametrize("parser", PARSERS)
def test_an_endless_header_line_is_cut_off(parser: str) -> None:
    """Finding 6: the server stops reading an endless head at the limit."""
    with (
        serving(parser) as port,
        socket.create_connection(("127.0.0.1", port), timeout=30) as s,
    ):
        s.sendall(b"GET / HTTP/1.1\r\nx-long: ")
        sent = 0
        with pytest.raises(OSError):  # noqa: PT012 - the loop is what is refused
            while sent < 64 * 1024 * 1024:
                s.sendall(b"a" * 65536)
                sent += 65536
        assert sent < 64 * 1024 * 1024


@pytest.mark.parametrize("parser", PARSERS)
def test_a_body_larger_than_the_limit_is_not_counted(parser: str) -> None:
    """Only heads are bounded: a body and the next kept-alive request pass."""
    with (
        serving(parser) as port,
        socket.create_connection(("127.0.0.1", port), timeout=30) as s,
    ):
        body = b"b" * (LIMIT * 4)
        s.sendall(
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        assert read_response(s).startswith(b"HTTP/1.1 200")
        s.sendall(head_of(LIMIT))
        assert read_response(s).startswith(b"HTTP/1.1 200")
        s.sendall(head_of(LIMIT + 1))
        assert read_response(s).startswith(b"HTTP/1.1 431")


@pytest.mark.parametrize("parser", PARSERS)
def test_a_dribbled_head_is_dropped_after_the_timeout(parser: str) -> None:
    """Finding 6: slowloris connections are closed; others are served meanwhile."""
    with serving(parser, timeout=1.0) as port:
        idle = socket.create_connection(("127.0.0.1", port), timeout=30)
        slow = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            slow.sendall(b"GET / HTTP/1.1\r\n")
            started = time.monotonic()
            for i in range(4):
                try:
                    slow.sendall(f"x-{i}: 1\r\n".encode())
                except OSError:
                    break
                assert exchange(port, head_of(200)).startswith(b"HTTP/1.1 200")
                time.sleep(0.5)
            answer = read_response(slow)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
            assert time.monotonic() - started < 20
            assert read_response(idle) == b""  # closed, never answered
        finally:
            idle.close()
            slow.close()


@pytest.mark.parametrize("parser", PARSERS)
def test_a_later_head_is_timed_from_its_own_first_byte(parser: str) -> None:
    """
    A keep-alive connection's second head gets the whole timeout from its
    first byte, not from when the connection opened, and no more.
    """
    with (
        serving(parser, timeout=1.0) as port,
        socket.create_connection(("127.0.0.1", port), timeout=30) as s,
    ):
        s.sendall(head_of(200))
        assert read_response(s).startswith(b"HTTP/1.1 200")
        time.sleep(0.6)
        s.sendall(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        time.sleep(0.7)  # past the first head's deadline, before this one's
        s.sendall(b"x-a: 1\r\n")
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.recv(1)  # nothing answered, nothing closed yet
        s.setblocking(True)
        answer = read_response(s)
        took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.9 <= took < 10, took
