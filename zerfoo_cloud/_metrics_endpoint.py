"""
Where ``zerfoo-cloud serve`` exposes ``/metrics``, and to whom.

Metrics name the service's traffic, so ``serve`` never answers them to
anyone who can reach the serving port:

- on the serving port, ``/metrics`` answers only a request carrying
  ``Authorization: Bearer <token>`` with the token of `METRICS_TOKEN_ENV`
  (`metrics_endpoint`); without that variable it is a 404;
- `MetricsPortServer` serves ``/metrics`` on a port of its own (bound to
  127.0.0.1 by default) from the ``serve`` process, summing every worker's
  values (prometheus multi-process mode); the token is required there too
  when it is set.
"""

from __future__ import annotations

import hmac
import os
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._openai_error import openai_error_body

if TYPE_CHECKING:
    from collections.abc import Callable

    from zerfoo_cloud.http._types import Receive, Scope, Send

__all__ = [
    "METRICS_TOKEN_ENV",
    "MetricsPortServer",
    "authorized",
    "metrics_endpoint",
    "metrics_token",
]

#: The environment variable holding the bearer token that ``/metrics`` requires.
METRICS_TOKEN_ENV = "ZERFOO_CLOUD_METRICS_TOKEN"  # noqa: S105 - a variable name


def metrics_token(environ: dict[str, str] | None = None) -> str | None:
    """
    The metrics token from the environment, or ``None`` when unset or empty.

    .. versionadded:: 0.1.0
    """
    return (os.environ if environ is None else environ).get(METRICS_TOKEN_ENV) or None


def authorized(authorization: str | None, token: str | None) -> bool:
    """
    Whether an ``Authorization`` header value carries *token* as a bearer
    token (compared in constant time); with no *token*, always true.

    .. versionadded:: 0.1.0
    """
    if token is None:
        return True
    if authorization is None:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


_NOT_SERVED = openai_error_body(
    "metrics are not served on this port", "invalid_request_error", "not_found"
)
_UNAUTHORIZED = openai_error_body(
    "metrics need Authorization: Bearer <metrics token>",
    "authentication_error",
    "invalid_metrics_token",
)


def metrics_endpoint(
    render: Callable[[], bytes], content_type: str, token: str | None
) -> Callable[[Scope, Receive, Send], Any]:
    """
    Return the ASGI app ``serve`` answers ``/metrics`` with on the serving
    port: 404 without *token*, 401 without the right bearer token, else
    *render*'s output (computed in a worker thread, off the event loop).

    .. versionadded:: 0.1.0
    """
    import anyio.to_thread

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        if token is None:
            status, body = 404, _NOT_SERVED
        else:
            given = None
            for name, value in scope.get("headers", ()):
                if name.lower() == b"authorization":
                    given = value.decode("latin-1")
                    break
            if not authorized(given, token):
                status, body = 401, _UNAUTHORIZED
                headers.append((b"www-authenticate", b"Bearer"))
            elif scope.get("method") not in {"GET", "HEAD"}:
                status, body = (
                    405,
                    openai_error_body(
                        "metrics answer GET",
                        "invalid_request_error",
                        "method_not_allowed",
                    ),
                )
                headers.append((b"allow", b"GET, HEAD"))
            else:
                status = 200
                body = await anyio.to_thread.run_sync(render)
                headers = [(b"content-type", content_type.encode("latin-1"))]
        headers.append((b"content-length", str(len(body)).encode()))
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send(
            {
                "type": "http.response.body",
                "body": b"" if scope.get("method") == "HEAD" else body,
            }
        )

    return app


class MetricsPortServer:
    """
    Serves ``GET /metrics`` on *host*:*port* from a thread of this process.

    Args:
        host: the address to bind (``127.0.0.1``: this host only).
        port: the port (0: a free one; see `port`).
        render: returns the Prometheus text to serve.
        content_type: its content type.
        token: the bearer token required, or ``None``.

    Raises:
        OSError: the address cannot be bound.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        host: str,
        port: int,
        render: Callable[[], bytes],
        content_type: str,
        token: str | None,
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.partition("?")[0] != "/metrics":
                    self._answer(HTTPStatus.NOT_FOUND, _NOT_SERVED, "application/json")
                elif not authorized(self.headers.get("Authorization"), token):
                    self._answer(
                        HTTPStatus.UNAUTHORIZED, _UNAUTHORIZED, "application/json"
                    )
                else:
                    self._answer(HTTPStatus.OK, render(), content_type)

            def _answer(self, status: HTTPStatus, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # scrapes are not worth a log line each

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="zerfoo-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        """
        The port it listens on.
        """
        port: int = self._server.server_address[1]
        return port

    def start(self) -> None:
        """
        Start answering, in a daemon thread.
        """
        self._thread.start()

    def close(self) -> None:
        """
        Stop answering and release the port.
        """
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
