"""
The WSGI adapter: the PEP 3333 twin of `zerfoo_cloud.http.asgi`.

`WSGICloudMiddleware` and `WSGIBillingMiddleware` make the same decisions
through the same `Policy`; they read the request body once, give the app a
fresh ``wsgi.input``, capture the status with a wrapped ``start_response``,
and return an iterable that passes the body through chunk by chunk, always
forwards ``close()`` to the app's iterable, and accounts the request in
``close()``. Accounting runs in the request's thread (WSGI has no event loop
to keep free).
"""

from __future__ import annotations

import http
import io
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

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
from zerfoo_cloud.http._usage import TENANT_KEY, USAGE_KEY, ResponseMeter, UsageSlot

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator

    from _typeshed import OptExcInfo

    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.http._policy import Policy, RequestInfo
    from zerfoo_cloud.http._types import Environ, StartResponse, WSGIApp
    from zerfoo_cloud.metering import UsageRecorder

__all__ = ["WSGIBillingMiddleware", "WSGICloudMiddleware"]

_log = logging.getLogger("zerfoo_cloud.http")
_READ_SIZE = 1 << 16


def _status_line(status: int) -> str:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"{status} {phrase}"


def _read_exact(stream: Any, length: int) -> bytes:
    parts: list[bytes] = []
    left = length
    while left > 0:
        chunk = stream.read(min(left, _READ_SIZE))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read_to_end(stream: Any, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while chunk := stream.read(_READ_SIZE):
        parts.append(chunk)
        size += len(chunk)
        if limit and size > limit:
            raise RequestTooLargeError(limit, size)
    return b"".join(parts)


def _read_body(environ: Environ, limit: int) -> bytes:
    """
    Read the whole request body from ``wsgi.input``.

    Raises:
        RequestTooLargeError: ``CONTENT_LENGTH`` or the bytes read pass
            *limit* (0 means no limit).
    """
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    raw: str = environ.get("CONTENT_LENGTH") or ""
    if raw.isdigit():
        length = int(raw)
        if limit and length > limit:
            raise RequestTooLargeError(limit, length)
        return _read_exact(stream, length)
    if environ.get("wsgi.input_terminated"):
        return _read_to_end(stream, limit)
    return b""


class _Exchange:
    """
    One request/response passing through: captures the status, meters the
    body, and accounts the request exactly once.
    """

    __slots__ = (
        "accounting",
        "durable",
        "extra_headers",
        "finish",
        "length",
        "meter",
        "settled",
        "start_response",
        "status",
    )

    def __init__(
        self,
        start_response: StartResponse,
        info: RequestInfo,
        extra_headers: list[tuple[str, str]],
        finish: Callable[[int, ResponseMeter], Finished],
        accounting: Accounting,
        *,
        durable: bool,
    ) -> None:
        self.start_response = start_response
        self.meter = ResponseMeter(drop_usage_only=info.drop_usage_only)
        self.extra_headers = extra_headers
        self.finish = finish
        self.accounting = accounting
        self.durable = durable
        self.status = 0
        self.length: int | None = None
        self.settled = False

    def settle(self, *, flush: bool) -> None:
        if self.settled:
            return
        self.settled = True
        self.accounting.account(self.finish(self.status or 500, self.meter))
        if flush:
            self.accounting.flush_now()

    def metered_start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
        /,
    ) -> Callable[[bytes], object]:
        self.status = int(status[:3])
        for name, value in headers:
            lower = name.lower()
            if lower == "content-type":
                self.meter.start(value)
            elif lower == "content-length" and value.isdigit():
                self.length = int(value)
        write = self.start_response(status, [*headers, *self.extra_headers], exc_info)
        meter = self.meter

        def metered_write(data: bytes) -> object:
            return write(meter.feed(data))

        return metered_write

    def run(self, app: WSGIApp, environ: Environ) -> Iterable[bytes]:
        try:
            result = app(environ, self.metered_start_response)
        except Exception as exc:  # noqa: BLE001 - logged, answered with a 500
            _log.exception("the app raised an exception")
            failure = error_response(exc, self.extra_headers)
            # A second start_response call must carry exc_info (PEP 3333).
            exc_info = sys.exc_info() if self.status else None
            self.status = 500
            self.settle(flush=False)
            self.start_response(_status_line(500), failure.headers, exc_info)
            return [failure.body]
        except BaseException:
            self.settle(flush=False)
            raise
        return _MeteredBody(result, self)


class _MeteredBody:
    """
    The response iterable: passes chunks through, always forwards
    ``close()``, and settles the request there (or, in durable mode, just
    before the last chunk).
    """

    def __init__(self, result: Iterable[bytes], exchange: _Exchange) -> None:
        self._result = result
        self._exchange = exchange
        self._iterator: Generator[bytes, None, None] | None = None

    def __iter__(self) -> Iterator[bytes]:
        if self._exchange.durable:
            self._iterator = self._iterate_durable()
        else:
            self._iterator = self._iterate()
        return self._iterator

    def _iterate(self) -> Generator[bytes, None, None]:
        meter = self._exchange.meter
        for chunk in self._result:
            out = meter.feed(chunk) if chunk else chunk
            if out:
                yield out
        tail = meter.close()
        if tail:
            yield tail

    def _iterate_durable(self) -> Generator[bytes, None, None]:
        # The last chunk is known by Content-Length, or else by holding one
        # chunk back until the app's iterable ends; it is sent only after the
        # billing record is durable.
        exchange = self._exchange
        meter = exchange.meter
        held = b""
        seen = 0
        for chunk in self._result:
            out = meter.feed(chunk) if chunk else chunk
            seen += len(chunk)
            if exchange.length is not None and seen >= exchange.length:
                out = held + out + meter.close()
                held = b""
                exchange.settle(flush=True)
                yield out
                continue
            if held:
                yield held
            held = out
        last = held + meter.close()
        exchange.settle(flush=True)
        if last:
            yield last

    def close(self) -> None:
        """
        Close the app's iterable (PEP 3333), then settle the request.
        """
        try:
            if self._iterator is not None:
                self._iterator.close()
        finally:
            try:
                close = getattr(self._result, "close", None)
                if close is not None:
                    close()
            finally:
                self._exchange.settle(flush=False)


def _prepare(environ: Environ, info: RequestInfo) -> None:
    environ["wsgi.input"] = io.BytesIO(info.body)
    environ["CONTENT_LENGTH"] = str(len(info.body))


class WSGICloudMiddleware:
    """
    WSGI middleware that makes an app multi-tenant: the twin of
    `zerfoo_cloud.http.asgi.CloudMiddleware`, with the same behaviour.

    An exception the app raises before its response starts is logged and
    answered with an OpenAI-shaped 500.

    .. versionadded:: 0.1.0
    """

    def __init__(self, app: WSGIApp, policy: Policy, accounting: Accounting) -> None:
        self.app = app
        self.policy = policy
        self.accounting = accounting

    def __call__(
        self, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        """
        Serve one WSGI request.
        """
        policy = self.policy
        options = policy.options
        path: str = environ.get("PATH_INFO", "")
        if path == options.health_path:
            status, payload = policy.health()
            start_response(
                _status_line(status),
                [
                    ("content-type", "application/json"),
                    ("content-length", str(len(payload))),
                    ("cache-control", "no-store"),
                ],
            )
            return [payload]
        method: str = environ.get("REQUEST_METHOD", "GET")
        remote: str = environ.get("REMOTE_ADDR", "")
        accounting = self.accounting
        tenant = None
        model = ""
        try:
            tenant = policy.authenticate(
                api_key_from(
                    environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_X_API_KEY")
                )
            )
            info = policy.inspect(
                method, path, _read_body(environ, options.max_body_bytes)
            )
            model = info.model
            ticket = policy.admit(tenant, info)
        except CloudError as exc:
            refusal, finished = policy.refuse(
                exc, tenant, (model, method, path, remote)
            )
            accounting.account_refusal(finished, durable=options.durable)
            start_response(_status_line(refusal.status), refusal.headers)
            return [refusal.body]
        slot = UsageSlot()
        environ[USAGE_KEY] = slot
        environ[TENANT_KEY] = tenant.id
        finish = policy.finisher(ticket, slot, (method, path, remote))
        _prepare(environ, info)
        exchange = _Exchange(
            start_response,
            info,
            ticket.headers,
            finish,
            accounting,
            durable=options.durable,
        )
        return exchange.run(self.app, environ)


class WSGIBillingMiddleware:
    """
    WSGI middleware that only meters: the twin of
    `zerfoo_cloud.http.asgi.BillingMiddleware`.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        app: WSGIApp,
        recorder: UsageRecorder,
        *,
        tenant_id: Callable[[Environ], str] | None = None,
        include_usage: bool = True,
        clock: Clock = time.time,
    ) -> None:
        self.app = app
        self.tenant_id = tenant_id
        self.options = PolicyOptions(max_body_bytes=0, include_usage=include_usage)
        self.accounting = Accounting(None, recorder=recorder, clock=clock)

    def __call__(
        self, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        """
        Serve one WSGI request.
        """
        method: str = environ.get("REQUEST_METHOD", "GET")
        path: str = environ.get("PATH_INFO", "")
        info = inspect_request(method, path, _read_body(environ, 0), self.options)
        slot = environ.get(USAGE_KEY)
        if not isinstance(slot, UsageSlot):
            slot = environ[USAGE_KEY] = UsageSlot()
        tenant = environ.get(TENANT_KEY)
        tenant_id: str = tenant if isinstance(tenant, str) else ""
        if not isinstance(tenant, str) and self.tenant_id is not None:
            tenant_id = self.tenant_id(environ)
        remote: str = environ.get("REMOTE_ADDR", "")
        finish = metering_finisher(info, slot, tenant_id, (method, path, remote))
        _prepare(environ, info)
        exchange = _Exchange(
            start_response, info, [], finish, self.accounting, durable=False
        )
        return exchange.run(self.app, environ)
