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

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from zerfoo_cloud.errors import (
    DuplicateHeaderError,
    RateLimitedError,
    RequestTooLargeError,
    StoreError,
)
from zerfoo_cloud.http._accounting import (
    CLIENT_CLOSED_REQUEST,
    MODEL_KEY,
    REQUEST_ID_KEY,
    Accounting,
    refuse_safely,
)
from zerfoo_cloud.http._models import (
    MAX_MODEL_LIST_BYTES,
    ModelListError,
    check_model_route,
    filter_model_list,
    model_route,
)
from zerfoo_cloud.http._policy import (
    Finished,
    PolicyOptions,
    api_key_from,
    client_request_id,
    describe_failure,
    error_response,
    inspect_for_metering,
    metering_finisher,
    new_request_id,
)
from zerfoo_cloud.http._response_meter import ResponseMeter
from zerfoo_cloud.http._usage import TENANT_KEY, USAGE_KEY, UsageSlot

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.http._policy import Policy, RequestInfo
    from zerfoo_cloud.http._types import ASGIApp, Message, Receive, Scope, Send
    from zerfoo_cloud.metering import UsageRecorder
    from zerfoo_cloud.tenants import Tenant

__all__ = ["BillingMiddleware", "CloudMiddleware"]

_log = logging.getLogger("zerfoo_cloud.http")

#: Settlements under way whose request's task was cancelled: each still
#: runs to its end (`_Exchange.finished`), held here until it does.
_SETTLING: set[asyncio.Task[Finished]] = set()

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


def _request_headers(
    scope: Scope,
) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None]:
    """
    Return the Authorization, x-api-key, Content-Length and x-request-id
    header values.

    Raises:
        DuplicateHeaderError: Authorization or x-api-key came twice.
    """
    authorization = api_key = length = client_id = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is not None:
                raise DuplicateHeaderError("Authorization")
            authorization = value
        elif name == b"x-api-key":
            if api_key is not None:
                raise DuplicateHeaderError("x-api-key")
            api_key = value
        elif name == b"content-length":
            length = value
        elif name == b"x-request-id":
            client_id = value
    return authorization, api_key, length, client_id


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
    the response on the way out, and accounts the request exactly once in
    `account`: when the last body message is sent (just before, in durable
    mode), or, whatever happened, when the app ends (`run`'s ``finally``).

    A response meter that raises stops metering (the response passes on
    unchanged, the failure is logged and counted, and the reservation is
    billed). With *models* (a tenant allow list's test), a model list
    response is held, filtered and sent whole.
    """

    __slots__ = (
        "accounted",
        "accounting",
        "body",
        "durable",
        "extra_headers",
        "finish",
        "finish_async",
        "held",
        "holding",
        "meter",
        "metering",
        "models",
        "pending_start",
        "remaining",
        "replayed",
        "request_id",
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
        finish: Callable[[int, ResponseMeter | None], Finished],
        *,
        accounting: Accounting,
        durable: bool,
        request_id: str | None = None,
        models: Callable[[str], bool] | None = None,
        finish_async: Callable[[int, ResponseMeter | None], Awaitable[Finished]]
        | None = None,
    ) -> None:
        self.upstream_receive = receive
        self.upstream_send = send
        self.body = info.body
        self.meter = ResponseMeter(drop_usage_only=info.drop_usage_only)
        self.metering = True
        self.extra_headers = extra_headers
        self.finish = finish
        self.finish_async = finish_async
        self.accounting = accounting
        self.durable = durable
        self.request_id = request_id
        self.models = models
        self.holding = models is not None
        self.held: list[Message] = []
        self.status = 0
        self.accounted = False
        self.replayed = False
        # Body bytes still owed by the response's Content-Length (None: none).
        self.remaining: int | None = None
        # A start whose body is still to come, sent just before that body.
        self.pending_start: Message | None = None

    async def run(
        self, app: ASGIApp, scope: Scope, setup: Callable[[], None] | None = None
    ) -> None:
        try:
            if setup is not None:
                setup()
            await app(scope, self.receive, self.send)
            await self._send_pending_start()
        except Exception as exc:
            # The start the app sent goes out, as it would have before.
            with contextlib.suppress(OSError):
                await self._send_pending_start()
            if not self.status:
                self.status = 500
                failure = error_response(exc, request_id=self.request_id)
                headers = _encode(failure.headers) + self.extra_headers
                await self._account_durably(500)
                # The client may be gone as well; the app's error matters more.
                with contextlib.suppress(OSError):
                    await _respond(self.upstream_send, 500, headers, failure.body)
            # Always re-raise, so that the server logs the error.
            raise
        finally:
            await self.account(self.status or 500)

    async def account(self, status: int) -> Finished | None:
        """
        Account the request, once: returns its record the first time,
        ``None`` after. Never raises (`Policy.finisher`, `Accounting.account`).
        """
        if self.accounted:
            return None
        self.accounted = True
        if self.finish_async is None:  # inline: no coroutine on the common path
            finished = self.finish(status, self.meter if self.metering else None)
        else:
            finished = await self.finished(status)
        self.accounting.submit(finished)
        return finished

    async def finished(self, status: int) -> Finished:
        """
        Settle the request and return its record: with *finish* inline, or
        awaiting *finish_async* (a limiter store on the network). The
        settlement runs to its end even if this task is cancelled while it
        waits; its record is then submitted when it ends.
        """
        meter = self.meter if self.metering else None
        finish_async = self.finish_async
        if finish_async is None:
            return self.finish(status, meter)
        task = asyncio.ensure_future(finish_async(status, meter))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            _SETTLING.add(task)
            task.add_done_callback(self._submit_late)
            raise

    def _submit_late(self, task: asyncio.Task[Finished]) -> None:
        # The settlement of a cancelled request ended: account it now.
        _SETTLING.discard(task)
        if not task.cancelled():
            self.accounting.submit(task.result())

    def _meter_failed(self, exc: Exception) -> None:
        self.metering = False
        self.accounting.note_failure(
            describe_failure("response metering", exc), self.request_id
        )

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
            message = self._start(message)
            if self.holding:
                self.held.append(message)
                return
            if self.remaining == 0:  # the headers are the whole answer
                await self._account_durably(self.status)
            elif self.remaining is not None:
                # Its body is on the way: the head goes with it, in one
                # write of the server's.
                self.pending_start = message
                return
        await self.upstream_send(message)

    def _start(self, message: Message) -> Message:
        self.status = message["status"]
        headers: list[tuple[bytes, bytes]] = []
        for name, value in message.get("headers") or ():
            lower = name.lower()
            if lower == b"content-type" and self.metering:
                try:
                    self.meter.start(value)
                except Exception as exc:  # noqa: BLE001 - logged, counted, billed the reservation
                    self._meter_failed(exc)
            elif lower == b"content-length":
                self.remaining = _content_length(value)
            elif lower == b"x-request-id":
                # The request's id is ours; the app's own is kept beside it.
                name = b"x-upstream-request-id"  # noqa: PLW2901
            headers.append((name, value))
        headers += self.extra_headers
        if self.request_id is not None:
            headers.append((b"x-request-id", self.request_id.encode()))
        return {**message, "headers": headers}

    async def _send_body(self, message: Message) -> None:
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        out = chunk
        if self.metering:
            try:
                out = self.meter.feed(chunk) if chunk else chunk
                if not more:
                    tail = self.meter.close()
                    if tail:
                        out += tail
            except Exception as exc:  # noqa: BLE001 - logged, counted, billed the reservation
                self._meter_failed(exc)
                out = chunk
        if self.holding:
            await self._hold(out, more=more)
            return
        if more:
            if out is not chunk:
                if not out:
                    return
                message = {**message, "body": out}
            await self._before_sending(len(out))
            await self._send_pending_start()
            await self.upstream_send(message)
            return
        if out is not chunk:
            message = {**message, "body": out}
        await self._send_last(message)

    async def _account_durably(self, status: int) -> None:
        """
        In durable mode, account the request (once) and wait until its
        billing record and audit entry are durable; else do nothing (the
        request is accounted after its last byte).
        """
        if self.durable and not self.accounted:
            self.accounted = True
            finished = await self.finished(status)
            await self.accounting.submit_durable(finished)

    async def _before_sending(self, size: int) -> None:
        """
        Before *size* more body bytes go out: if they complete the declared
        Content-Length, the client has the whole answer once they are sent,
        whatever message the app sends after, so account durably now.
        """
        if self.remaining is not None:
            self.remaining -= size
            if self.remaining <= 0:
                await self._account_durably(self.status)

    async def _send_pending_start(self) -> None:
        """Send the start held back for its body, if one is."""
        start = self.pending_start
        if start is not None:
            self.pending_start = None
            await self.upstream_send(start)

    async def _send_last(self, message: Message) -> None:
        await self._account_durably(self.status)
        await self._send_pending_start()
        await self.upstream_send(message)
        await self.account(self.status)

    async def _hold(self, chunk: bytes, *, more: bool) -> None:
        """
        Keep a model list response until its end (at most
        `MAX_MODEL_LIST_BYTES`), then send it filtered by `models`.
        """
        assert self.models is not None
        held = self.held
        held.append({"type": "http.response.body", "body": chunk})
        size = sum(len(m.get("body", b"")) for m in held[1:])
        if more and size <= MAX_MODEL_LIST_BYTES:
            return
        start = held[0] if held and held[0]["type"] == "http.response.start" else None
        body = b"".join(m.get("body", b"") for m in held[1:])
        self.held = []
        self.holding = False
        status = 0 if start is None else start["status"]
        if status == 200:  # noqa: PLR2004 - only a listing is filtered
            filtered = filter_model_list(body, self.models)
        else:
            filtered = body if size <= MAX_MODEL_LIST_BYTES else None
        headers: list[tuple[bytes, bytes]]
        if filtered is None:
            failure = error_response(ModelListError(), request_id=self.request_id)
            self.status = status = failure.status
            headers = _encode(failure.headers) + self.extra_headers
            filtered = failure.body
        else:
            assert start is not None
            headers = [
                (k, v) for k, v in start["headers"] if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(filtered)).encode()))
        await self.upstream_send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await self._send_last({"type": "http.response.body", "body": filtered})


def _content_length(value: bytes) -> int | None:
    """A Content-Length header's value, or ``None`` if it is not a number."""
    text = value.strip()
    return int(text) if text.isdigit() and len(text) <= 19 else None  # noqa: PLR2004


class CloudMiddleware:
    """
    ASGI middleware that makes an app multi-tenant (see `zerfoo_cloud.CloudServer`).

    Per request: ``/healthz`` is answered at once; otherwise the API key is
    authenticated (400 when ``Authorization`` or ``x-api-key`` comes
    twice), the body read (413 past the limit), the model checked against
    the allow list (403), a concurrency slot, one request and the token
    reservation taken (429 if refused, having taken nothing), and the app
    run. Its response passes through unbuffered with the ``x-ratelimit-*``
    headers and ``x-request-id`` (the id of its billing record) added; when
    it ends the reservation is reconciled with the real usage, the slot
    given back, and one billing record, usage event and audit entry written
    off the event loop. A request refused, or failing, before the app runs
    gets an OpenAI-shaped error with its ``x-request-id`` and one audit
    entry. A tenant with a model allow list sees only its models in
    ``GET …/models``, and a 404 for ``GET …/models/{id}`` of another.

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
            headers = [*_HealthHeaders, (b"x-request-id", new_request_id().encode())]
            await _respond(send, status, headers, payload)
            return
        method: str = scope["method"]
        client = scope.get("client")
        remote = client[0] if client else ""
        tenant = None
        model = ""
        correlation = None
        route = None
        try:
            authorization, api_key, length, client_id = _request_headers(scope)
            if client_id is not None:
                correlation = client_request_id(client_id)
            key = api_key_from(authorization, api_key)
            tenant = (
                await policy.authenticate_async(key)
                if policy.tenants_wait
                else policy.authenticate(key)
            )
            body = await _read_body(receive, options.max_body_bytes, length)
            if body is None:
                self._gone(tenant, (model, method, path, remote), correlation)
                return
            info = policy.inspect(method, path, body)
            model = info.model
            route = model_route(method, path)
            check_model_route(route, tenant)
            ticket = (
                await policy.admit_async(tenant, info)
                if policy.limits_wait
                else policy.admit(tenant, info)
            )
        except Exception as exc:  # noqa: BLE001 - every refusal is answered and audited
            await self._refuse(
                exc, tenant, (model, method, path, remote), correlation, send
            )
            return
        request_id = ticket.request_id
        slot = UsageSlot()
        finish = policy.finisher(
            ticket, slot, (method, path, remote), correlation_id=correlation
        )
        finish_async = (
            policy.finisher_async(
                ticket, slot, (method, path, remote), correlation_id=correlation
            )
            if policy.limits_wait
            else None
        )
        models = None
        if route is not None and route[0] and tenant.model_limited():
            models = tenant.model_allowed
        exchange = _Exchange(
            receive,
            send,
            info,
            ticket.header_bytes,
            finish,
            accounting=self.accounting,
            durable=options.durable,
            request_id=request_id,
            models=models,
            finish_async=finish_async,
        )

        def setup() -> None:
            state = _request_state(scope)
            state[USAGE_KEY] = slot
            state[TENANT_KEY] = tenant.id
            state[REQUEST_ID_KEY] = request_id
            state[MODEL_KEY] = info.model
            if info.rewritten:
                _with_content_length(scope, len(info.body))

        await exchange.run(self.app, scope, setup)

    async def _refuse(
        self,
        exc: Exception,
        tenant: Tenant | None,
        request: tuple[str, str, str, str],
        correlation: str | None,
        send: Send,
    ) -> None:
        """
        Answer a request refused (or failed) before the app ran, and account
        it: an OpenAI-shaped error, one audit entry.
        """
        policy = self.policy
        if (
            tenant is not None
            and policy.limits_wait
            and not isinstance(exc, (RateLimitedError, StoreError))
        ):
            # Its quota headers are read from a store on the network.
            refusal, finished = await asyncio.to_thread(
                refuse_safely,
                policy,
                self.accounting,
                exc,
                tenant,
                request,
                correlation,
            )
        else:
            refusal, finished = refuse_safely(
                policy, self.accounting, exc, tenant, request, correlation
            )
        await self.accounting.submit_refusal(
            finished, durable=self.policy.options.durable
        )
        await _respond(send, refusal.status, _encode(refusal.headers), refusal.body)

    def _gone(
        self,
        tenant: Tenant,
        request: tuple[str, str, str, str],
        correlation: str | None,
    ) -> None:
        """Account a request whose client left before its body was read."""
        model, method, path, remote = request
        self.accounting.submit(
            Finished(
                tenant.id,
                None,
                model,
                CLIENT_CLOSED_REQUEST,
                method,
                path,
                remote,
                request_id=new_request_id(),
                correlation_id=correlation,
            )
        )


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
        info = inspect_for_metering(method, path, body, self.options)
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
