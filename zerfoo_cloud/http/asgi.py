"""
The ASGI adapter: pure ASGI middleware, no framework.

`CloudMiddleware` authenticates, admits, meters and accounts each HTTP
request with a `Policy`; `BillingMiddleware` only meters and publishes usage
events. Both read the request body once (it is small: a JSON request, at most
``max_body_bytes``), replay it to the app, and pass the response through one
message at a time: nothing of the response is buffered, whatever its size.
``lifespan`` and ``websocket`` scopes pass through untouched.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from zerfoo_cloud.errors import CloudError, RequestTooLargeError
from zerfoo_cloud.http._accounting import Accounting
from zerfoo_cloud.http._policy import (
    Finished,
    PolicyOptions,
    api_key_from,
    error_response,
    inspect_request,
    metering_finisher,
)
from zerfoo_cloud.http._usage import (
    TENANT_KEY,
    USAGE_KEY,
    ResponseMeter,
    UsageSlot,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.http._policy import Policy, RequestInfo
    from zerfoo_cloud.http._types import ASGIApp, Message, Receive, Scope, Send
    from zerfoo_cloud.metering import UsageRecorder

__all__ = ["BillingMiddleware", "CloudMiddleware"]

_HealthHeaders = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
]


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_body(
    receive: Receive, limit: int, length: bytes | None
) -> bytes | None:
    """
    Read the whole request body; ``None`` if the client went away first.

    Raises:
        RequestTooLargeError: ``Content-Length`` or the bytes read pass *limit*
            (0 means no limit).
    """
    if limit and length is not None:
        announced = int(length) if length.isdigit() else 0
        if announced > limit:
            raise RequestTooLargeError(limit, announced)
    parts: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if limit and size > limit:
            raise RequestTooLargeError(limit, size)
        parts.append(chunk)
        more = message.get("more_body", False)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _request_headers(scope: Scope) -> tuple[bytes | None, bytes | None, bytes | None]:
    """Return the Authorization, x-api-key and Content-Length header values."""
    authorization = api_key = length = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"x-api-key":
            api_key = value
        elif name == b"content-length":
            length = value
    return authorization, api_key, length


def _with_content_length(scope: Scope, size: int) -> None:
    headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
    headers.append((b"content-length", str(size).encode()))
    scope["headers"] = headers


def _request_state(scope: Scope) -> dict[str, object]:
    state: dict[str, object] | None = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    return state


class _Exchange:
    """
    One request/response passing through: replays the request body, meters
    the response on the way out, and accounts the request exactly once,
    when the last body message is sent (just before, in durable mode), or
    when the app ends without sending it.
    """

    __slots__ = (
        "accounted",
        "accounting",
        "body",
        "durable",
        "extra_headers",
        "finish",
        "meter",
        "replayed",
        "status",
        "upstream_receive",
        "upstream_send",
    )

    def __init__(
        self,
        receive: Receive,
        send: Send,
        info: RequestInfo,
        extra_headers: list[tuple[bytes, bytes]],
        finish: Callable[[int, ResponseMeter], Finished],
        *,
        accounting: Accounting,
        durable: bool,
    ) -> None:
        self.upstream_receive = receive
        self.upstream_send = send
        self.body = info.body
        self.meter = ResponseMeter(drop_usage_only=info.drop_usage_only)
        self.extra_headers = extra_headers
        self.finish = finish
        self.accounting = accounting
        self.durable = durable
        self.status = 0
        self.accounted = False
        self.replayed = False

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await app(scope, self.receive, self.send)
        except Exception as exc:
            if not self.status:
                self.status = 500
                failure = error_response(exc)
                headers = _encode(failure.headers) + self.extra_headers
                # The client may be gone as well; the app's error matters more.
                with contextlib.suppress(OSError):
                    await _respond(self.upstream_send, 500, headers, failure.body)
            # Always re-raise, so that the server logs the error.
            raise
        finally:
            if not self.accounted:
                self.accounted = True
                self.accounting.submit(self.finish(self.status or 500, self.meter))

    async def receive(self) -> Message:
        if not self.replayed:
            self.replayed = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        return await self.upstream_receive()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            await self._send_body(message)
            return
        if kind == "http.response.start":
            self.status = message["status"]
            headers = list(message.get("headers") or ())
            for name, value in headers:
                if name.lower() == b"content-type":
                    self.meter.start(value)
                    break
            headers += self.extra_headers
            message = {**message, "headers": headers}
        await self.upstream_send(message)

    async def _send_body(self, message: Message) -> None:
        meter = self.meter
        chunk = message.get("body", b"")
        out = meter.feed(chunk) if chunk else chunk
        if message.get("more_body", False):
            if out is not chunk:
                if not out:
                    return
                message = {**message, "body": out}
            await self.upstream_send(message)
            return
        tail = meter.close()
        if tail:
            out += tail
        if out is not chunk:
            message = {**message, "body": out}
        self.accounted = True
        if self.durable:
            await self.accounting.submit_durable(self.finish(self.status, meter))
            await self.upstream_send(message)
        else:
            await self.upstream_send(message)
            self.accounting.submit(self.finish(self.status, meter))


class CloudMiddleware:
    """
    ASGI middleware that makes an app multi-tenant (see `zerfoo_cloud.CloudServer`).

    Per request: ``/healthz`` is answered at once; otherwise the API key is
    authenticated, the body read (413 past the limit), the model checked
    against the allow list (403), a concurrency slot, one request and the
    token reservation taken (429 if refused, having taken nothing), and the
    app run. Its response passes through unbuffered with the
    ``x-ratelimit-*`` headers added; when it ends the reservation is
    reconciled with the real usage, the slot given back, and one billing
    record, usage event and audit entry written off the event loop.

    .. versionadded:: 0.1.0
    """

    def __init__(self, app: ASGIApp, policy: Policy, accounting: Accounting) -> None:
        self.app = app
        self.policy = policy
        self.accounting = accounting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """
        Serve one ASGI connection scope.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy
        options = policy.options
        path: str = scope["path"]
        if path == options.health_path:
            status, payload = policy.health()
            await _respond(send, status, _HealthHeaders, payload)
            return
        authorization, api_key, length = _request_headers(scope)
        method: str = scope["method"]
        client = scope.get("client")
        remote = client[0] if client else ""
        accounting = self.accounting
        tenant = None
        model = ""
        try:
            tenant = policy.authenticate(api_key_from(authorization, api_key))
            body = await _read_body(receive, options.max_body_bytes, length)
            if body is None:
                return
            info = policy.inspect(method, path, body)
            model = info.model
            ticket = policy.admit(tenant, info)
        except CloudError as exc:
            refusal, finished = policy.refuse(
                exc, tenant, (model, method, path, remote)
            )
            await accounting.submit_refusal(finished, durable=options.durable)
            await _respond(send, refusal.status, _encode(refusal.headers), refusal.body)
            return
        state = _request_state(scope)
        slot = UsageSlot()
        state[USAGE_KEY] = slot
        state[TENANT_KEY] = tenant.id
        if info.rewritten:
            _with_content_length(scope, len(info.body))
        finish = policy.finisher(ticket, slot, (method, path, remote))
        exchange = _Exchange(
            receive,
            send,
            info,
            ticket.header_bytes,
            finish,
            accounting=accounting,
            durable=options.durable,
        )
        await exchange.run(self.app, scope)


class BillingMiddleware:
    """
    ASGI middleware that only meters: one `UsageEvent` per request to *recorder*.

    Usage comes from `report_usage`, the JSON ``usage`` or the SSE chunks,
    as in `CloudMiddleware`. The tenant id is the one a `CloudMiddleware`
    outside this one authenticated, else ``tenant_id(scope)`` when given,
    else ``""``: never anything derived from the API key.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        app: ASGIApp,
        recorder: UsageRecorder,
        *,
        tenant_id: Callable[[Scope], str] | None = None,
        include_usage: bool = True,
        clock: Clock = time.time,
    ) -> None:
        self.app = app
        self.tenant_id = tenant_id
        self.options = PolicyOptions(max_body_bytes=0, include_usage=include_usage)
        self.accounting = Accounting(None, recorder=recorder, clock=clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """
        Serve one ASGI connection scope.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, 0, None)
        if body is None:
            return
        method: str = scope["method"]
        path: str = scope["path"]
        info = inspect_request(method, path, body, self.options)
        state = _request_state(scope)
        slot = state.get(USAGE_KEY)
        if not isinstance(slot, UsageSlot):
            slot = state[USAGE_KEY] = UsageSlot()
        tenant = state.get(TENANT_KEY)
        tenant_id: str = tenant if isinstance(tenant, str) else ""
        if not isinstance(tenant, str) and self.tenant_id is not None:
            tenant_id = self.tenant_id(scope)
        if info.rewritten:
            _with_content_length(scope, len(info.body))
        client = scope.get("client")
        remote = client[0] if client else ""
        finish = metering_finisher(info, slot, tenant_id, (method, path, remote))
        exchange = _Exchange(
            receive, send, info, [], finish, accounting=self.accounting, durable=False
        )
        await exchange.run(self.app, scope)
