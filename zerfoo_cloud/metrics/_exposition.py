"""
Serving the metrics to Prometheus: the text format's content type,
multi-process mode (`MULTIPROC_DIR_ENV`, `render_multiprocess`) and the bare
ASGI app `metrics_app`.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._asgi import acknowledge_lifespan
from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import InvalidConfigError

with needs_extra("metrics", "Prometheus metrics"):
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        generate_latest,
        values,
    )
    from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from zerfoo_cloud.metrics._metrics import Metrics

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_DIR_ENV",
    "check_multiprocess",
    "metrics_app",
    "render_multiprocess",
]

#: The environment variable that switches on multi-process mode.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: The content type of `Metrics.render`'s output (Prometheus text format).
CONTENT_TYPE: str = CONTENT_TYPE_LATEST

# The few ASGI types used here, kept local so no framework is needed.
_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


def check_multiprocess(path: str) -> None:
    """
    Check that multi-process mode can work with the folder *path*.

    Raises:
        InvalidConfigError: *path* is not a folder, or prometheus-client was
            imported before ``PROMETHEUS_MULTIPROC_DIR`` was set.
    """
    if not os.path.isdir(path):  # noqa: PTH112  # a str path from the environment
        msg = f"{MULTIPROC_DIR_ENV}={path!r} is not a folder: create it (empty) first"
        raise InvalidConfigError(msg, field=MULTIPROC_DIR_ENV)
    if values.ValueClass is values.MutexValue:
        msg = (
            f"{MULTIPROC_DIR_ENV} was set after prometheus_client was imported, so "
            "this process would write nothing to it: set it before the process starts"
        )
        raise InvalidConfigError(msg, field=MULTIPROC_DIR_ENV)


def render_multiprocess(path: str | os.PathLike[str]) -> bytes:
    """
    Return the sum of every process's metrics in the multi-process folder *path*.

    Any process can serve this, including one that records nothing itself
    (a supervisor or a sidecar).

    Raises:
        InvalidConfigError: *path* is not a folder.

    .. versionadded:: 0.1.0
    """
    registry = CollectorRegistry()
    try:
        MultiProcessCollector(registry, path=os.fspath(path))  # type: ignore[no-untyped-call]
    except ValueError as exc:
        msg = f"{os.fspath(path)!r} is not a folder: create it (empty) first"
        raise InvalidConfigError(msg, field=MULTIPROC_DIR_ENV) from exc
    return generate_latest(registry)


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
