"""
A keep-alive HTTP/1.1 load generator in Python, for `bench_proxy` where
``wrk`` is not installed: it answers as ``wrk`` does, with the requests
completed, p50 and p99 latency in ms, and the errors.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from urllib.parse import urlsplit


async def _read_response(reader: asyncio.StreamReader) -> bool:
    """Read one response, its body framed by Content-Length or chunked; whether it was 2xx."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return head[9:10] == b"2"


async def _load(
    url: str, body: str, key: str, connections: int, seconds: float
) -> tuple[int, float, float, int]:
    parts = urlsplit(url)
    data = body.encode()
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data
    latencies: list[float] = []
    errors = [0]
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                ok = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                if not ok:
                    errors[0] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    if not latencies:
        return 0, 0.0, 0.0, errors[0]
    cuts = (
        statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    )
    return len(latencies), cuts[49] * 1e3, cuts[98] * 1e3, errors[0]


def python_load(
    url: str, body: str, key: str, connections: int, seconds: float
) -> tuple[int, float, float, int]:
    """
    POST *body* to *url* over *connections* kept-alive connections for *seconds*.

    Returns:
        Requests completed, p50 and p99 latency in ms, and non-2xx answers.
    """
    return asyncio.run(_load(url, body, key, connections, seconds))
