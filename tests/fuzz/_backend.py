"""
The inference apps behind the server under test: an ASGI and a WSGI app (the
ASGI one also serves as the upstream of the proxy) that answer each request
with the `Reply` the test registered for it, and count every call.

A request names its reply in the ``x-fuzz-reply`` header; the apps record
the body each call received under that name.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Literal

import attrs

from zerfoo_cloud import report_usage

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from zerfoo_cloud.http._types import Receive, Scope, Send

#: The header that names a request's reply.
REPLY_HEADER = "x-fuzz-reply"
#: Where a reply body takes the request body (see `Reply.render`).
ECHO = b"@ECHO@"

Failure = Literal["none", "before", "mid"]

_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found"}


def short_bytes(data: bytes, limit: int = 120) -> str:
    """*data* as a repr cut to *limit* bytes, with its length when cut."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}... ({len(data)} bytes)"


class BackendError(Exception):
    """The failure a reply asks the app to raise."""


@attrs.frozen
class Reply:
    """
    One response of the app: *status*, *content_type* (none when ``None``),
    a body template cut into *parts* chunks, and whether the app reports
    usage through the usage slot or fails before or in the middle of the
    body (an exception; the server then drops the connection).
    """

    status: int
    content_type: bytes | None
    template: bytes = attrs.field(repr=short_bytes)
    parts: int = 1
    failure: Failure = "none"
    report: bool = False

    def render(self, request_body: bytes) -> list[bytes]:
        """The body chunks, `ECHO` replaced by the request body."""
        body = self.template.replace(ECHO, request_body or b"null")
        size = max(1, -(-len(body) // self.parts))
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        return chunks or [b""]

    def summary(self) -> str:
        """A short description for failure reports."""
        text = self.template[:160]
        more = f"... ({len(self.template)} bytes)" if len(self.template) > 160 else ""
        return (
            f"status={self.status} content-type={self.content_type!r} "
            f"parts={self.parts} failure={self.failure} report={self.report} "
            f"body={text!r}{more}"
        )


class _Calls:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: defaultdict[str, list[bytes]] = defaultdict(list)
        self.replies: dict[str, Reply] = {}

    def called(self, name: str, body: bytes) -> Reply | None:
        with self.lock:
            self.bodies[name].append(body)
            return self.replies.get(name)


class ASGIBackend:
    """
    An ASGI inference app answering registered replies (see the module doc).
    """

    def __init__(self) -> None:
        self.calls = _Calls()

    def expect(self, name: str, reply: Reply) -> None:
        """Answer the request named *name* with *reply*."""
        self.calls.replies[name] = reply

    def bodies(self, name: str) -> list[bytes]:
        """The body of each call made for the request named *name*."""
        with self.calls.lock:
            return list(self.calls.bodies.get(name, ()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI scope (lifespan too)."""
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        parts: list[bytes] = []
        more = True
        while more:
            message = await receive()
            parts.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(parts)
        name = dict(scope["headers"]).get(REPLY_HEADER.encode(), b"").decode()
        reply = self.calls.called(name, body)
        if reply is None:
            reply = Reply(404, b"application/json", b'{"error":{"message":"?"}}')
        if reply.report:
            report_usage(scope, 3, 5)
        if reply.failure == "before":
            raise BackendError(name)
        headers = (
            []
            if reply.content_type is None
            else [(b"content-type", reply.content_type)]
        )
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": headers}
        )
        chunks = reply.render(body)
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            await send(
                {
                    "type": "http.response.body",
                    "body": chunk,
                    "more_body": not last or reply.failure == "mid",
                }
            )
            if reply.failure == "mid":
                raise BackendError(name)


class WSGIBackend:
    """
    The WSGI twin of `ASGIBackend`.
    """

    def __init__(self) -> None:
        self.calls = _Calls()

    def expect(self, name: str, reply: Reply) -> None:
        """Answer the request named *name* with *reply*."""
        self.calls.replies[name] = reply

    def bodies(self, name: str) -> list[bytes]:
        """The body of each call made for the request named *name*."""
        with self.calls.lock:
            return list(self.calls.bodies.get(name, ()))

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Serve one WSGI request."""
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body: bytes = environ["wsgi.input"].read(size) if size else b""
        name = environ.get("HTTP_X_FUZZ_REPLY", "")
        reply = self.calls.called(name, body)
        if reply is None:
            reply = Reply(404, b"application/json", b'{"error":{"message":"?"}}')
        if reply.report:
            report_usage(environ, 3, 5)
        if reply.failure == "before":
            raise BackendError(name)
        status = f"{reply.status} {_REASONS.get(reply.status, 'Status')}"
        headers = (
            []
            if reply.content_type is None
            else [("Content-Type", reply.content_type.decode("latin-1"))]
        )
        start_response(status, headers)
        return self._body(reply, name, reply.render(body))

    @staticmethod
    def _body(reply: Reply, name: str, chunks: list[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            yield chunk
            if reply.failure == "mid":
                raise BackendError(name)


class CountingApp:
    """
    Counts the HTTP requests that reach the ASGI app it wraps, by reply name
    (for the proxy, whose upstream may not be reached when the proxy itself
    refuses a request).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.counts: defaultdict[str, int] = defaultdict(int)

    def count(self, name: str) -> int:
        """How many calls the request named *name* made."""
        with self.lock:
            return self.counts.get(name, 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count, then pass the scope on."""
        if scope["type"] == "http":
            name = dict(scope["headers"]).get(REPLY_HEADER.encode(), b"").decode()
            with self.lock:
                self.counts[name] += 1
        await self.app(scope, receive, send)
