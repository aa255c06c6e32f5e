"""
`metrics_app`: the bare ASGI app that serves `Metrics.render` to Prometheus.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from zerfoo_cloud._asgi import acknowledge_lifespan
from zerfoo_cloud.metrics._exposition import CONTENT_TYPE
from zerfoo_cloud.metrics._metrics import Metrics

__all__ = ["metrics_app"]

# The few ASGI types used here, kept local so no framework is needed.
_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


def metrics_app(metrics: Metrics) -> _ASGIApp:
    """
    Return an ASGI app that serves *metrics* to Prometheus.

    It answers ``GET`` (and ``HEAD``) on any path with `Metrics.render` and
    `CONTENT_TYPE`, and 405 with an ``Allow`` header to other methods; route
    ``/metrics`` to it. Lifespan events are acknowledged.

    .. versionadded:: 0.1.0
    """

    async def app(scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] == "lifespan":
            await acknowledge_lifespan(receive, send)
            return
        if scope["type"] != "http":
            msg = f"metrics_app serves HTTP only, not {scope['type']!r}"
            raise TypeError(msg)
        method = scope["method"]
        if method in {"GET", "HEAD"}:
            status = 200
            body = metrics.render()
            headers = [(b"content-type", CONTENT_TYPE.encode("latin-1"))]
        else:
            status = 405
            body = b"Method Not Allowed\n"
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"allow", b"GET, HEAD"),
            ]
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send(
            {"type": "http.response.body", "body": b"" if method == "HEAD" else body}
        )

    return app
