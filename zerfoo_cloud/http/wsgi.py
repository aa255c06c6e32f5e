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

from zerfoo_cloud.errors import DuplicateHeaderError, RequestTooLargeError
from zerfoo_cloud.http._accounting import REQUEST_ID_KEY, Accounting, refuse_safely
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
    body, and accounts the request exactly once, in `settle` (called from
    the body's ``close()``, which the server always calls, or before the
    last chunk in durable mode, or when the app raises).

    A response meter that raises stops metering (the body passes on
    unchanged, the failure is logged and counted, the reservation billed).
    With *models* (a tenant allow list's test), a model list response is
    held, filtered and sent whole.
    """

    __slots__ = (
        "accounting",
        "deferred",
        "durable",
        "extra_headers",
        "finish",
        "length",
        "meter",
        "metering",
        "models",
        "request_id",
        "settled",
        "start_response",
        "status",
    )

    def __init__(
        self,
        start_response: StartResponse,
        info: RequestInfo,
        extra_headers: list[tuple[str, str]],
        finish: Callable[[int, ResponseMeter | None], Finished],
        accounting: Accounting,
        *,
        durable: bool,
        request_id: str | None = None,
        models: Callable[[str], bool] | None = None,
    ) -> None:
        self.start_response = start_response
        self.meter = ResponseMeter(drop_usage_only=info.drop_usage_only)
        self.metering = True
        self.extra_headers = extra_headers
        self.finish = finish
        self.accounting = accounting
        self.durable = durable
        self.request_id = request_id
        self.models = models
        self.deferred: tuple[str, list[tuple[str, str]]] | None = None
        self.status = 0
        self.length: int | None = None
        self.settled = False

    def settle(self, *, flush: bool) -> None:
        """
        Account the request, once. Never raises (`Policy.finisher`,
        `Accounting.account`), except the durable flush.
        """
        if self.settled:
            return
        self.settled = True
        finished = self.finish(
            self.status or 500, self.meter if self.metering else None
        )
        self.accounting.account(finished)
        if flush:
            self.accounting.flush_now()

    def meter_failed(self, exc: Exception) -> None:
        self.metering = False
        self.accounting.note_failure(
            describe_failure("response metering", exc), self.request_id
        )

    def feed(self, chunk: bytes) -> bytes:
        if not self.metering or not chunk:
            return chunk
        try:
            return self.meter.feed(chunk)
        except Exception as exc:  # noqa: BLE001 - logged, counted, billed the reservation
            self.meter_failed(exc)
            return chunk

    def close_meter(self) -> bytes:
        if not self.metering:
            return b""
        try:
            return self.meter.close()
        except Exception as exc:  # noqa: BLE001 - logged, counted, billed the reservation
            self.meter_failed(exc)
            return b""

    def metered_start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
        /,
    ) -> Callable[[bytes], object]:
        self.status = int(status[:3])
        out: list[tuple[str, str]] = []
        for name, value in headers:
            lower = name.lower()
            if lower == "content-type" and self.metering:
                try:
                    self.meter.start(value)
                except Exception as exc:  # noqa: BLE001 - logged, counted, billed the reservation
                    self.meter_failed(exc)
            elif lower == "content-length" and value.isdigit():
                self.length = int(value)
            elif lower == "x-request-id":
                # The request's id is ours; the app's own is kept beside it.
                name = "x-upstream-request-id"  # noqa: PLW2901
            out.append((name, value))
        out += self.extra_headers
        if self.request_id is not None:
            out.append(("x-request-id", self.request_id))
        if self.models is not None and exc_info is None:
            self.deferred = (status, out)
            return _refuse_write
        write = self.start_response(status, out, exc_info)

        def metered_write(data: bytes) -> object:
            return write(self.feed(data))

        return metered_write

    def run(self, app: WSGIApp, environ: Environ) -> Iterable[bytes]:
        try:
            result = app(environ, self.metered_start_response)
        except Exception as exc:  # noqa: BLE001 - logged, answered with a 500
            _log.exception("the app raised an exception")
            failure = error_response(
                exc, self.extra_headers, request_id=self.request_id
            )
            # A second start_response call must carry exc_info (PEP 3333).
            exc_info = sys.exc_info() if self.status and not self.deferred else None
            self.status = 500
            self.settle(flush=self.durable)
            self.start_response(_status_line(500), failure.headers, exc_info)
            return [failure.body]
        except BaseException:
            self.settle(flush=False)
            raise
        return _MeteredBody(result, self)


def _refuse_write(data: bytes) -> object:
    msg = "a model list must be returned as the response iterable, not written"
    raise RuntimeError(msg)


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
        if self._exchange.models is not None:
            self._iterator = self._iterate_models()
        elif self._exchange.durable:
            self._iterator = self._iterate_durable()
        else:
            self._iterator = self._iterate()
        return self._iterator

    def _iterate(self) -> Generator[bytes, None, None]:
        exchange = self._exchange
        for chunk in self._result:
            out = exchange.feed(chunk)
            if out:
                yield out
        tail = exchange.close_meter()
        if tail:
            yield tail

    def _iterate_durable(self) -> Generator[bytes, None, None]:
        # The last chunk is known by Content-Length, or else by holding one
        # chunk back until the app's iterable ends; it is sent only after the
        # billing record is durable.
        # An app that fails mid-answer is accounted first; the chunk held
        # back then goes out before the error, as without durability.
        exchange = self._exchange
        held = b""
        seen = 0
        try:
            for chunk in self._result:
                out = exchange.feed(chunk)
                seen += len(chunk)
                if exchange.length is not None and seen >= exchange.length:
                    out = held + out + exchange.close_meter()
                    held = b""
                    exchange.settle(flush=True)
                    yield out
                    continue
                if held:
                    yield held
                held = out
        except Exception:
            exchange.settle(flush=True)
            if held:
                yield held
            raise
        last = held + exchange.close_meter()
        exchange.settle(flush=True)
        if last:
            yield last

    def _iterate_models(self) -> Generator[bytes, None, None]:
        # A model list: kept whole (at most MAX_MODEL_LIST_BYTES), filtered
        # by the tenant's allow list, sent with its own Content-Length.
        exchange = self._exchange
        assert exchange.models is not None
        parts: list[bytes] = []
        size = 0
        for chunk in self._result:
            parts.append(exchange.feed(chunk))
            size += len(chunk)
            if size > MAX_MODEL_LIST_BYTES:
                break
        parts.append(exchange.close_meter())
        body = b"".join(parts)
        status, headers = exchange.deferred or (_status_line(500), [])
        if exchange.status == 200:  # noqa: PLR2004 - only a listing is filtered
            filtered = filter_model_list(body, exchange.models)
        else:
            filtered = body if size <= MAX_MODEL_LIST_BYTES else None
        if filtered is None:
            failure = error_response(
                ModelListError(),
                exchange.extra_headers,
                request_id=exchange.request_id,
            )
            exchange.status = failure.status
            status, headers = _status_line(failure.status), failure.headers
            filtered = failure.body
        else:
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("content-length", str(len(filtered))))
        exchange.settle(flush=exchange.durable)
        exchange.start_response(status, headers)
        yield filtered

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


def _credentials(environ: Environ) -> tuple[str | None, str | None]:
    """
    The Authorization and x-api-key values.

    Raises:
        DuplicateHeaderError: one came twice (a WSGI server joins repeated
            headers with a comma, which no key holds).
    """
    authorization: str | None = environ.get("HTTP_AUTHORIZATION")
    api_key: str | None = environ.get("HTTP_X_API_KEY")
    if authorization is not None and "," in authorization:
        raise DuplicateHeaderError("Authorization")
    if api_key is not None and "," in api_key:
        raise DuplicateHeaderError("x-api-key")
    return authorization, api_key


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
                    ("x-request-id", new_request_id()),
                ],
            )
            return [payload]
        method: str = environ.get("REQUEST_METHOD", "GET")
        remote: str = environ.get("REMOTE_ADDR", "")
        accounting = self.accounting
        tenant = None
        model = ""
        correlation = client_request_id(environ.get("HTTP_X_REQUEST_ID"))
        try:
            tenant = policy.authenticate(api_key_from(*_credentials(environ)))
            info = policy.inspect(
                method, path, _read_body(environ, options.max_body_bytes)
            )
            model = info.model
            route = model_route(method, path)
            check_model_route(route, tenant)
            ticket = policy.admit(tenant, info)
        except Exception as exc:  # noqa: BLE001 - every refusal is answered and audited
            refusal, finished = refuse_safely(
                policy,
                accounting,
                exc,
                tenant,
                (model, method, path, remote),
                correlation,
            )
            accounting.account_refusal(finished, durable=options.durable)
            start_response(_status_line(refusal.status), refusal.headers)
            return [refusal.body]
        request_id = ticket.request_id
        slot = UsageSlot()
        finish = policy.finisher(
            ticket, slot, (method, path, remote), correlation_id=correlation
        )
        models = None
        if route is not None and route[0] and tenant.model_limited():
            models = tenant.model_allowed
        exchange = _Exchange(
            start_response,
            info,
            ticket.headers,
            finish,
            accounting,
            durable=options.durable,
            request_id=request_id,
            models=models,
        )
        try:
            environ[USAGE_KEY] = slot
            environ[TENANT_KEY] = tenant.id
            environ[REQUEST_ID_KEY] = request_id
            _prepare(environ, info)
        except BaseException:
            exchange.settle(flush=False)
            raise
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
        info = inspect_for_metering(method, path, _read_body(environ, 0), self.options)
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
