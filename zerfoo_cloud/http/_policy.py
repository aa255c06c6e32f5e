"""
The sans-IO policy core shared by the ASGI and WSGI adapters.

The adapters only translate HTTP; every decision is made here, in plain
functions and methods that take and return values:

- `api_key_from`: the key from ``Authorization: Bearer`` or ``x-api-key``.
- `inspect_request`: the model, the prompt estimate, the token reservation,
  streaming, and the ``stream_options.include_usage`` rewrite.
- `Policy.authenticate`, `Policy.admit` (allow list, then the concurrency
  slot, one request and the token reservation in one atomic step),
  `Policy.settle` (reconcile the reservation with the real use, give the slot
  back).
- `error_response`: OpenAI-shaped errors, status looked up in
  `EXCEPTION_STATUS` along the exception's MRO, with ``Retry-After`` and the
  ``x-ratelimit-*`` headers.

Prompt estimate: ``ceil(characters / 4)`` of the text of ``messages``
(plus 4 tokens per message and 3 for the reply), ``prompt`` or ``input``
(strings, lists of strings, token-id lists: one token per id); non-text
message parts count 85 tokens each. The reservation adds ``max_tokens``,
``max_completion_tokens`` or ``max_output_tokens`` (else
``default_max_tokens``; nothing for embeddings). A body that is not a JSON
object reserves ``default_estimate``; a request without a body reserves
nothing. A reservation never exceeds the tenant's whole token budget, so a
large request waits for a full budget instead of failing forever.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import secrets
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

import attrs

from zerfoo_cloud.audit import AuditResult
from zerfoo_cloud.errors import (
    CloudError,
    InvalidConfigError,
    ModelNotAllowedError,
    RateLimitedError,
    RequestTooLargeError,
    StoreError,
    TenantNotFoundError,
    UnauthorizedError,
)
from zerfoo_cloud.http._usage import Usage, parse_json
from zerfoo_cloud.metering import MAX_MODEL_LENGTH, billable_model

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from zerfoo_cloud.http._usage import ResponseMeter, UsageSlot
    from zerfoo_cloud.limits import Decision
    from zerfoo_cloud.tenants import Tenant, TenantManager

__all__ = [
    "EXCEPTION_STATUS",
    "ErrorResponse",
    "Finished",
    "Policy",
    "PolicyOptions",
    "RequestInfo",
    "ResourcePinner",
    "Ticket",
    "api_key_from",
    "audit_result",
    "error_response",
    "estimate_prompt_tokens",
    "fallback_usage",
    "format_duration",
    "inspect_request",
    "metering_finisher",
    "new_request_id",
    "rate_limit_header_bytes",
    "rate_limit_headers",
    "status_for",
]

H = TypeVar("H", str, bytes)

#: HTTP status, OpenAI error ``type`` and ``code`` for each exception class,
#: looked up along ``type(exc).__mro__`` (the most specific class wins).
EXCEPTION_STATUS: dict[type[BaseException], tuple[int, str, str | None]] = {
    UnauthorizedError: (401, "invalid_request_error", "invalid_api_key"),
    TenantNotFoundError: (401, "invalid_request_error", "invalid_api_key"),
    ModelNotAllowedError: (403, "invalid_request_error", "model_not_allowed"),
    RequestTooLargeError: (413, "invalid_request_error", "request_too_large"),
    RateLimitedError: (429, "requests", "rate_limit_exceeded"),
    StoreError: (503, "server_error", "service_unavailable"),
    CloudError: (500, "server_error", "internal_error"),
    Exception: (500, "server_error", "internal_error"),
}

#: The message of errors that are not the library's own (no internals leak).
_SERVER_ERROR_MESSAGE = "The server had an error while processing your request."
_GENERATION_SUFFIXES = ("/chat/completions", "/completions")
_NO_COMPLETION_SUFFIXES = ("/embeddings", "/moderations")
_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_REPLY = 3
_TOKENS_PER_NON_TEXT_PART = 85
_CHARS_PER_TOKEN = 4
_MS_PER_SECOND = 1000
_MS_PER_MINUTE = 60_000
_MS_PER_HOUR = 3_600_000
_FIRST_ERROR_STATUS = 400
_UNAUTHORIZED = 401
_DENIED = (403, 413)
_TOO_MANY_REQUESTS = 429
#: Seconds a client refused for concurrency is told to wait: a slot usually
#: frees within one (there is no refill time to compute).
_CONCURRENCY_RETRY_AFTER = 1.0


class ResourcePinner(Protocol):
    """
    **Protocol**: What `CloudServer` needs of a resource manager.

    `zerfoo_cloud.ResourceManager` provides it: `touch` marks a model as
    used now, `use` keeps it loaded (pinned) while the block runs. Both may
    raise `LookupError` (`zerfoo_cloud.ModelNotLoadedError`) for a model the
    manager does not hold; the request then runs unpinned.

    .. versionadded:: 0.1.0
    """

    def touch(self, model_id: str) -> object: ...

    def use(self, model_id: str) -> AbstractContextManager[object]: ...


def _non_negative(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{attribute.name} must be a non-negative integer, not {value!r}"
        raise InvalidConfigError(msg, field=attribute.name)


@attrs.frozen
class PolicyOptions:
    """
    The settings of the HTTP policy (see `zerfoo_cloud.CloudServer`).

    .. versionadded:: 0.1.0
    """

    max_body_bytes: int = attrs.field(default=32 * 1024 * 1024, validator=_non_negative)
    default_estimate: int = attrs.field(default=1024, validator=_non_negative)
    default_max_tokens: int = attrs.field(default=512, validator=_non_negative)
    include_usage: bool = True
    durable: bool = True
    health_path: str = "/healthz"


class RequestInfo(NamedTuple):
    """
    What the policy reads from a request body.

    Attributes:
        model: the ``model`` member ("" when absent).
        prompt_tokens: the prompt estimate.
        reserve: tokens to pre-authorise (prompt estimate plus the completion
            allowance).
        stream: the request asks for a server-sent event stream.
        drop_usage_only: ``stream_options.include_usage`` was added by the
            middleware, so the usage-only chunk must not reach the client.
        body: the body to give the app (rewritten when *drop_usage_only*).
        rewritten: *body* differs from what the client sent.
        mangled: the request's model name was too long or not valid text,
            and *model* is `billable_model` of it (such a name is never
            in an allow list).

    .. versionadded:: 0.1.0
    """

    model: str = ""
    prompt_tokens: int = 0
    reserve: int = 0
    stream: bool = False
    drop_usage_only: bool = False
    body: bytes = b""
    rewritten: bool = False
    mangled: bool = False


def api_key_from(
    authorization: str | bytes | None, x_api_key: str | bytes | None
) -> str | None:
    """
    Return the API key of a request, or ``None`` if it has none.

    ``Authorization: Bearer <key>`` (scheme in any case) wins over
    ``x-api-key: <key>``.

    .. versionadded:: 0.1.0
    """
    # The common form, without the general path's tuples and partition.
    if type(authorization) is bytes and authorization[:7] == b"Bearer ":
        key = authorization[7:].decode("latin-1").strip()
        if key:
            return key
    elif type(authorization) is str and authorization[:7] == "Bearer ":
        key = authorization[7:].strip()
        if key:
            return key
    return _api_key_from_any(authorization, x_api_key)


def _api_key_from_any(
    authorization: str | bytes | None, x_api_key: str | bytes | None
) -> str | None:
    for value, bearer in ((authorization, True), (x_api_key, False)):
        if not value:
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if bearer:
            scheme, _, rest = text.strip().partition(" ")
            if scheme.lower() != "bearer":
                continue
            text = rest
        text = text.strip()
        if text:
            return text
    return None


def _text_chars(value: object) -> tuple[int, int]:
    """Return (characters, extra tokens) of a prompt-like value."""
    chars = extra = 0
    if isinstance(value, str):
        chars = len(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        extra = 1
    elif isinstance(value, list):
        for item in value:
            c, e = _text_chars(item)
            chars += c
            extra += e
    elif isinstance(value, dict):
        text = value.get("text")
        content = value.get("content")
        if isinstance(text, str):
            chars = len(text)
        elif content is not None:
            chars, extra = _text_chars(content)
            extra += _TOKENS_PER_MESSAGE
        else:
            extra = _TOKENS_PER_NON_TEXT_PART
    return chars, extra


def estimate_prompt_tokens(doc: dict[str, Any]) -> int:
    """
    Estimate the prompt tokens of an OpenAI request body (see the module doc).

    .. versionadded:: 0.1.0
    """
    chars = extra = 0
    messages = doc.get("messages")
    if isinstance(messages, list):
        for message in messages:
            extra += _TOKENS_PER_MESSAGE
            if isinstance(message, dict):
                c, e = _text_chars(message.get("content"))
                chars += c
                extra += e
        extra += _TOKENS_PER_REPLY
    for name in ("prompt", "input"):
        value = doc.get(name)
        if value is not None:
            c, e = _text_chars(value)
            chars += c
            extra += e
    return -(-chars // _CHARS_PER_TOKEN) + extra


def _max_tokens(doc: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = doc.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def inspect_request(
    method: str, path: str, body: bytes, options: PolicyOptions
) -> RequestInfo:
    """
    Read the model, the token estimate and the streaming flags from a body.

    A body that is not a JSON object passes unchanged and reserves
    ``options.default_estimate``; an empty body reserves nothing. For a
    streamed ``…/chat/completions`` or ``…/completions`` request without
    ``stream_options.include_usage``, and ``options.include_usage`` on, the
    body is rewritten to ask for it and *drop_usage_only* is set.

    .. versionadded:: 0.1.0
    """
    if not body:
        return RequestInfo(body=body)
    try:
        doc = parse_json(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return RequestInfo(reserve=options.default_estimate, body=body)
    model = doc.get("model")
    model = model if isinstance(model, str) else ""
    mangled = False
    if len(model) > MAX_MODEL_LENGTH or not model.isascii():
        billed = billable_model(model)
        mangled = billed != model
        model = billed
    prompt = estimate_prompt_tokens(doc)
    completion = _max_tokens(doc)
    if completion is None:
        completion = (
            0 if path.endswith(_NO_COMPLETION_SUFFIXES) else options.default_max_tokens
        )
    stream = doc.get("stream") is True
    drop = False
    if stream and options.include_usage and path.endswith(_GENERATION_SUFFIXES):
        stream_options = doc.get("stream_options")
        if not isinstance(stream_options, dict):
            stream_options = {}
        if stream_options.get("include_usage") is not True:
            doc["stream_options"] = {**stream_options, "include_usage": True}
            body = json.dumps(doc, ensure_ascii=False).encode()
            drop = True
    return RequestInfo(
        model, prompt, prompt + completion, stream, drop, body, drop, mangled
    )


def format_duration(seconds: float) -> str:
    """
    Format *seconds* as OpenAI's rate-limit reset headers do: ``12ms``,
    ``1s``, ``1.5s``, ``6m0s``, ``1h0m0s`` (rounded up to the millisecond).

    .. versionadded:: 0.1.0
    """
    if not (seconds > 0 and math.isfinite(seconds)):
        return "0s"
    ms = math.ceil(seconds * _MS_PER_SECOND - 1e-6)
    if ms < _MS_PER_SECOND:
        return f"{max(ms, 1)}ms"
    hours, rest = divmod(ms, _MS_PER_HOUR)
    minutes, rest = divmod(rest, _MS_PER_MINUTE)
    whole, frac = divmod(rest, _MS_PER_SECOND)
    sec = str(whole) if not frac else f"{whole}.{frac:03d}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{sec}s"
    if minutes:
        return f"{minutes}m{sec}s"
    return f"{sec}s"


_HEADER_NAMES = {
    quota: (
        f"x-ratelimit-limit-{quota}",
        f"x-ratelimit-remaining-{quota}",
        f"x-ratelimit-reset-{quota}",
    )
    for quota in ("requests", "tokens")
}
_HEADER_NAME_BYTES = {
    quota: (limit.encode(), remaining.encode(), reset.encode())
    for quota, (limit, remaining, reset) in _HEADER_NAMES.items()
}


def _quota_headers(
    requests: Decision | None,
    tokens: Decision | None,
    names: dict[str, tuple[H, H, H]],
    number: Callable[[int], H],
    text: Callable[[str], H],
) -> list[tuple[H, H]]:
    headers: list[tuple[H, H]] = []
    for quota, decision in (("requests", requests), ("tokens", tokens)):
        if decision is not None:
            limit, remaining, reset = names[quota]
            headers.append((limit, number(decision.limit)))
            headers.append((remaining, number(decision.remaining)))
            headers.append((reset, text(format_duration(decision.reset_after))))
    return headers


def _text(value: str) -> str:
    return value


def rate_limit_headers(
    requests: Decision | None, tokens: Decision | None
) -> list[tuple[str, str]]:
    """
    Return the ``x-ratelimit-*`` headers for the given quota decisions.

    An unlimited quota (``None``) has no headers.

    .. versionadded:: 0.1.0
    """
    return _quota_headers(requests, tokens, _HEADER_NAMES, str, _text)


def rate_limit_header_bytes(
    requests: Decision | None, tokens: Decision | None
) -> list[tuple[bytes, bytes]]:
    """
    `rate_limit_headers` as ASGI wants them: names and values in bytes.

    .. versionadded:: 0.1.0
    """
    return _quota_headers(
        requests, tokens, _HEADER_NAME_BYTES, b"%d".__mod__, str.encode
    )


def status_for(exc: BaseException) -> tuple[int, str, str | None]:
    """
    Return ``(status, type, code)`` for *exc* from `EXCEPTION_STATUS`.

    .. versionadded:: 0.1.0
    """
    for cls in type(exc).__mro__:
        found = EXCEPTION_STATUS.get(cls)
        if found is not None:
            return found
    return EXCEPTION_STATUS[Exception]


@attrs.frozen
class ErrorResponse:
    """
    A complete error response: status, headers and JSON body.

    .. versionadded:: 0.1.0
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def error_response(
    exc: BaseException, headers: list[tuple[str, str]] | None = None
) -> ErrorResponse:
    """
    Build the OpenAI-shaped response for *exc*.

    The body is ``{"error": {"message", "type", "param", "code"}}``; a
    `RateLimitedError` adds ``Retry-After`` in whole seconds (at least 1).
    *headers* (the ``x-ratelimit-*`` ones) are added.

    .. versionadded:: 0.1.0
    """
    status, kind, code = status_for(exc)
    message = str(exc) if isinstance(exc, CloudError) else _SERVER_ERROR_MESSAGE
    out = [("content-type", "application/json")]
    if isinstance(exc, RateLimitedError):
        kind = exc.limit
        wait = exc.retry_after
        seconds = math.ceil(wait) if math.isfinite(wait) else 60
        out.append(("retry-after", str(max(1, seconds))))
    if headers:
        out.extend(headers)
    body = json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}
    ).encode()
    out.append(("content-length", str(len(body))))
    return ErrorResponse(status, out, body)


def audit_result(status: int) -> AuditResult:
    """
    The audit result of a response with HTTP *status*.

    .. versionadded:: 0.1.0
    """
    if status < _FIRST_ERROR_STATUS:
        return AuditResult.SUCCESS
    if status == _UNAUTHORIZED:
        return AuditResult.UNAUTHORIZED
    if status in _DENIED:
        return AuditResult.DENIED
    if status == _TOO_MANY_REQUESTS:
        return AuditResult.RATE_LIMITED
    return AuditResult.ERROR


def fallback_usage(info: RequestInfo, status: int, streamed_events: int) -> Usage:
    """
    The usage billed when neither the app nor the response reported one.

    A failed response (status 400 or more, or none at all) generated
    nothing. A stream counts one token per content event it carried. Any
    other response is billed its reservation: the prompt estimate, and the
    rest as completion.

    .. versionadded:: 0.1.0
    """
    if not 0 < status < _FIRST_ERROR_STATUS:
        return Usage(0, 0, "estimate")
    if streamed_events:
        return Usage(info.prompt_tokens, streamed_events, "estimate")
    return Usage(
        info.prompt_tokens, max(0, info.reserve - info.prompt_tokens), "estimate"
    )


class _RequestIds:
    """
    Unique request ids without a system call each: a random 64-bit prefix per
    process and a counter (32 hex digits, like a UUID).
    """

    def __init__(self) -> None:
        self._prefix = ""
        self._counter = itertools.count()
        self._reset()
        # A forked child must not repeat its parent's ids; checking the pid
        # on every call would cost a system call.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


#: Return a new request id, unique across processes and restarts.
new_request_id = _RequestIds()


class Ticket:
    """
    One admitted request: what it reserved and holds until it is settled.

    *requests* and *tokens* are the quota decisions of its admission
    (``None`` for an unlimited quota): its ``x-ratelimit-*`` headers.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "info",
        "pin",
        "request_id",
        "requests",
        "reserved",
        "settled",
        "tenant",
        "tokens",
    )

    def __init__(  # noqa: PLR0917 - what an admission holds
        self,
        tenant: Tenant,
        info: RequestInfo,
        reserved: int,
        requests: Decision | None,
        tokens: Decision | None,
        pin: AbstractContextManager[object] | None,
    ) -> None:
        self.tenant = tenant
        self.info = info
        self.reserved = reserved
        self.requests = requests
        self.tokens = tokens
        self.pin = pin
        self.request_id = new_request_id()
        self.settled = False

    @property
    def headers(self) -> list[tuple[str, str]]:
        """
        The ``x-ratelimit-*`` headers of the admission.
        """
        return rate_limit_headers(self.requests, self.tokens)

    @property
    def header_bytes(self) -> list[tuple[bytes, bytes]]:
        """
        `headers` in bytes, for ASGI.
        """
        return rate_limit_header_bytes(self.requests, self.tokens)


class Policy:
    """
    Authentication, admission and settlement of requests (sans-IO).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        tenants: TenantManager,
        options: PolicyOptions,
        *,
        resources: ResourcePinner | None = None,
    ) -> None:
        self.tenants = tenants
        self.options = options
        self.resources = resources
        self.healthy = True

    def health(self) -> tuple[int, bytes]:
        """
        Return the ``/healthz`` status and body.
        """
        if self.healthy:
            return 200, b'{"status":"ok"}'
        return 503, b'{"status":"degraded"}'

    def authenticate(self, api_key: str | None) -> Tenant:
        """
        Return the tenant owning *api_key*.

        Raises:
            UnauthorizedError: no key, or no tenant has it.
        """
        if api_key is None:
            raise UnauthorizedError("missing")
        try:
            return self.tenants.get_by_api_key(api_key)
        except TenantNotFoundError:
            raise UnauthorizedError("invalid") from None

    def inspect(self, method: str, path: str, body: bytes) -> RequestInfo:
        """
        `inspect_request` with this policy's options.
        """
        return inspect_request(method, path, body, self.options)

    def admit(self, tenant: Tenant, info: RequestInfo) -> Ticket:
        """
        Admit one request of *tenant*, or refuse it having taken nothing.

        Order: the model allow list, then a concurrency slot, one request
        and the token reservation in one atomic step
        (`Tenant.begin_request`). A refusal by one limit leaves the others
        untouched.

        Raises:
            ModelNotAllowedError: the model is not in the allow list.
            RateLimitedError: a limit refused it.
        """
        model = info.model
        if model and (
            not tenant.model_allowed(model)
            or (info.mangled and tenant.record.model_allow_list)
        ):
            raise ModelNotAllowedError(tenant.id, model)
        record = tenant.record
        budget = record.token_budget
        reserve = min(info.reserve, budget) if budget else info.reserve
        admission = tenant.begin_request(reserve)
        if admission.concurrency_refused:
            raise RateLimitedError(
                tenant.id,
                "concurrency",
                _CONCURRENCY_RETRY_AFTER,
                requests=admission.requests,
                tokens=admission.tokens,
                capacity=record.max_concurrent_requests,
            )
        if not admission.allowed:
            refused = admission.refused_by or "requests"
            by_requests = refused == "requests"
            raise RateLimitedError(
                tenant.id,
                refused,
                admission.retry_after,
                requests=admission.requests,
                tokens=admission.tokens,
                requested=1 if by_requests else reserve,
                capacity=record.rate_limit if by_requests else budget,
            )
        pin = None
        if model and self.resources is not None:
            try:
                pin = self._pin(model)
            except BaseException:
                tenant.release_concurrent()
                raise
        return Ticket(tenant, info, reserve, admission.requests, admission.tokens, pin)

    def _pin(self, model: str) -> AbstractContextManager[object] | None:
        assert self.resources is not None
        try:
            self.resources.touch(model)
            pin = self.resources.use(model)
            pin.__enter__()
        except LookupError:
            return None
        return pin

    def quota_headers(self, tenant: Tenant | None) -> list[tuple[str, str]]:
        """
        The ``x-ratelimit-*`` headers of *tenant* now (for refused requests).
        """
        if tenant is None:
            return []
        record = tenant.record
        return rate_limit_headers(
            tenant.request_quota() if record.rate_limit else None,
            tenant.token_quota() if record.token_budget else None,
        )

    def refusal(self, exc: BaseException, tenant: Tenant | None) -> ErrorResponse:
        """
        The response refusing a request with *exc*, with quota headers.
        """
        if isinstance(exc, RateLimitedError):
            headers = rate_limit_headers(exc.requests, exc.tokens)
        else:
            try:
                headers = self.quota_headers(tenant)
            except StoreError:
                headers = []
        return error_response(exc, headers)

    def refuse(
        self,
        exc: BaseException,
        tenant: Tenant | None,
        request: tuple[str, str, str, str],
    ) -> tuple[ErrorResponse, Finished]:
        """
        The response refusing a request with *exc*, and the record of it.

        *request* is ``(model, method, path, remote_addr)``.
        """
        refusal = self.refusal(exc, tenant)
        model, method, path, remote = request
        finished = Finished(
            "" if tenant is None else tenant.id,
            None,
            model,
            refusal.status,
            method,
            path,
            remote,
            tenant is not None,
        )
        return refusal, finished

    def finisher(
        self, ticket: Ticket, slot: UsageSlot, request: tuple[str, str, str]
    ) -> Callable[[int, ResponseMeter], Finished]:
        """
        Return ``finish(status, meter)``: settles *ticket* with the usage the
        app reported in *slot*, else the one *meter* saw, and returns the
        record of the request. *request* is ``(method, path, remote_addr)``.
        """
        method, path, remote = request

        def finish(status: int, meter: ResponseMeter) -> Finished:
            usage = slot.get() or meter.usage()
            billed = self.settle(ticket, usage, status, meter.streamed_events)
            return Finished(
                ticket.tenant.id,
                billed,
                ticket.info.model,
                status,
                method,
                path,
                remote,
                request_id=ticket.request_id,
            )

        return finish

    def settle(
        self, ticket: Ticket, usage: Usage | None, status: int, streamed_events: int
    ) -> Usage:
        """
        Finish an admitted request: reconcile its reservation with *usage*
        (refund the rest, or charge the excess), unpin its model and give its
        concurrency slot back. Runs once; later calls return the same usage
        without doing anything.

        Returns:
            The usage to bill: *usage*, or `fallback_usage` when it is
            ``None``.
        """
        billed = usage or fallback_usage(ticket.info, status, streamed_events)
        if ticket.settled:
            return billed
        ticket.settled = True
        try:
            ticket.tenant.end_request(ticket.reserved, billed.total_tokens)
        finally:
            if ticket.pin is not None:
                ticket.pin.__exit__(None, None, None)
        return billed


class Finished(NamedTuple):
    """
    One finished request, as the accounting records it.

    *usage* is ``None`` for a refused request (it is audited, not billed).

    .. versionadded:: 0.1.0
    """

    tenant_id: str
    usage: Usage | None
    model: str
    status: int
    method: str
    path: str
    remote_addr: str
    authenticated: bool = True
    request_id: str | None = None


def metering_finisher(
    info: RequestInfo, slot: UsageSlot, tenant_id: str, request: tuple[str, str, str]
) -> Callable[[int, ResponseMeter], Finished]:
    """
    Return ``finish(status, meter)`` for metering without limits: the usage
    reported in *slot*, else the one *meter* saw, else `fallback_usage`.
    *request* is ``(method, path, remote_addr)``.

    .. versionadded:: 0.1.0
    """
    method, path, remote = request

    def finish(status: int, meter: ResponseMeter) -> Finished:
        usage = (
            slot.get()
            or meter.usage()
            or fallback_usage(info, status, meter.streamed_events)
        )
        return Finished(tenant_id, usage, info.model, status, method, path, remote)

    return finish
