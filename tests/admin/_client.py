"""
A synchronous client for an ASGI app, and raw ASGI drivers for what a
client library will not send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx

from zerfoo_cloud.http.admin import AdminAPI


class Client:
    """
    Sends requests to *app* in process through `httpx.ASGITransport`.
    """

    def __init__(
        self, app: AdminAPI, *, client: tuple[str, int] = ("203.0.113.7", 4000)
    ) -> None:
        self.app = app
        self.client = client

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """
        Send one request and return the whole response.
        """

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=self.client)
            async with httpx.AsyncClient(
                transport=transport, base_url="https://admin.test"
            ) as http:
                return await http.request(method, path, **kwargs)

        return asyncio.run(go())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """
        GET *path*.
        """
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """
        POST to *path*.
        """
        return self.request("POST", path, **kwargs)


def drive(
    app: AdminAPI,
    scope: dict[str, Any],
    messages: Iterable[dict[str, Any]] = ({"type": "http.request", "body": b""},),
) -> list[dict[str, Any]]:
    """
    Run *app* on a raw ASGI *scope*, feeding *messages*; return what it sent.
    """
    incoming = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)  # pragma: no cover - a test would hang here
        raise AssertionError  # pragma: no cover

    async def send(message: Any) -> None:
        sent.append(dict(message))

    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=30))
    return sent


def http_scope(
    method: str, path: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> dict[str, Any]:
    """
    A minimal ASGI ``http`` scope.
    """
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": list(headers),
        "client": ("198.51.100.1", 5000),
        "server": ("admin.test", 443),
    }
