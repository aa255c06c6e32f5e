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
message parts count 85 tokens each. The reservation adds the largest of
``max_tokens``, ``max_completion_tokens`` and ``max_output_tokens`` (else
``default_max_tokens``; nothing for embeddings and moderations); each must be
an integer from 0 to `MAX_TOKENS_LIMIT`.

No request the policy cannot fully read reaches the app. The body is parsed
once by `zerfoo_cloud.http._json.parse_json` (bounded depth, size and number
length), and `InvalidRequestError` (400) refuses: on ``POST`` to a
chat/completions, completions, embeddings or responses path, a body that is
not a JSON object or a missing, empty or non-string ``model``; on a
moderations path the model may be omitted (`RequestInfo.default_model`),
except for a tenant with an allow list; on any path, a body that starts like
JSON and cannot be read, or a ``model`` that is not a string. A body that is
not JSON on another path (an upload) passes unchanged and reserves
``default_estimate``; a request without a body reserves nothing. A
reservation larger than the tenant's whole token budget is refused at once
with `RequestOverBudgetError` (429, no ``Retry-After``: waiting never helps).
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

import attrs

from zerfoo_cloud._openai_error import SERVER_ERROR_MESSAGE, openai_error_body
from zerfoo_cloud.errors import (
    CloudError,
    DuplicateHeaderError,
    InvalidConfigError,
    InvalidRequestError,
    ModelNotAllowedError,
    ModelNotFoundError,
    RateLimitedError,
    RequestOverBudgetError,
    RequestTooLargeError,
    StoreError,
    TenantNotFoundError,
    UnauthorizedError,
)
from zerfoo_cloud.http._audit_result import audit_result
from zerfoo_cloud.http._json import MAX_JSON_BYTES, parse_json
from zerfoo_cloud.http._usage import Usage
from zerfoo_cloud.metering import (
    MAX_MODEL_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    MAX_TOKENS,
    billable_model,
    new_request_id,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from zerfoo_cloud.http._usage import ResponseMeter, UsageSlot
    from zerfoo_cloud.limits import Decision
    from zerfoo_cloud.tenants import Tenant, TenantManager

__all__ = [
    "EXCEPTION_STATUS",
    "MAX_TOKENS_LIMIT",
    "ErrorResponse",
    "Finished",
    "Policy",
    "PolicyOptions",
    "RequestInfo",
    "ResourcePinner",
    "Ticket",
    "api_key_from",
    "audit_result",
    "clamp_usage",
    "client_request_id",
    "describe_failure",
    "error_response",
    "estimate_prompt_tokens",
    "fallback_usage",
    "format_duration",
    "inspect_for_metering",
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
    DuplicateHeaderError: (400, "invalid_request_error", "duplicate_header"),
    UnauthorizedError: (401, "invalid_request_error", "invalid_api_key"),
    TenantNotFoundError: (401, "invalid_request_error", "invalid_api_key"),
    InvalidRequestError: (400, "invalid_request_error", "invalid_request"),
    ModelNotAllowedError: (403, "invalid_request_error", "model_not_allowed"),
    ModelNotFoundError: (404, "invalid_request_error", "model_not_found"),
    RequestTooLargeError: (413, "invalid_request_error", "request_too_large"),
    RateLimitedError: (429, "requests", "rate_limit_exceeded"),
    RequestOverBudgetError: (429, "tokens", "rate_limit_exceeded"),
    StoreError: (503, "server_error", "service_unavailable"),
    CloudError: (500, "server_error", "internal_error"),
    Exception: (500, "server_error", "internal_error"),
}

#: The largest ``max_tokens`` (``max_completion_tokens``,
#: ``max_output_tokens``) accepted: the largest signed 32-bit integer.
MAX_TOKENS_LIMIT = 2**31 - 1
_MAX_TOKENS_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_GENERATION_SUFFIXES = ("/chat/completions", "/completions")
_MODEL_SUFFIXES = ("/chat/completions", "/completions", "/embeddings", "/responses")
_OPTIONAL_MODEL_SUFFIXES = ("/moderations",)
_OTHER_ENDPOINT = 0
_MODEL_ENDPOINT = 1
_OPTIONAL_MODEL_ENDPOINT = 2
#: A body that starts like JSON (an object or array, maybe after a byte
#: order mark or in UTF-16/32) is JSON, whatever its endpoint.
_JSON_START = re.compile(
    rb"(?:\xef\xbb\xbf|\xff\xfe|\xfe\xff|\x00)?[ \t\r\n]*[\[{]|.?\x00"
)
_NO_COMPLETION_SUFFIXES = ("/embeddings", "/moderations")
_TOKENS_PER_MESSAGE = 4
_TOKENS_PER_REPLY = 3
_TOKENS_PER_NON_TEXT_PART = 85
_CHARS_PER_TOKEN = 4
_MS_PER_SECOND = 1000
_MS_PER_MINUTE = 60_000
_MS_PER_HOUR = 3_600_000
_FIRST_ERROR_STATUS = 400
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
        default_model: the body names no model and the app chooses one
            (moderations); refused for a tenant with an allow list.

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
    default_model: bool = False


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
    """
    The largest completion allowance the body names, or ``None``.

    Upstreams differ on which of the fields wins (vLLM ignores a 0), so the
    reservation covers the largest.

    Raises:
        InvalidRequestError: a field is set (not ``null``) to something else
            than an integer from 0 to `MAX_TOKENS_LIMIT`.
    """
    found: int | None = None
    for name in _MAX_TOKENS_FIELDS:
        value = doc.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            msg = f"Invalid type for '{name}': expected an integer."
            raise InvalidRequestError(msg, code="invalid_type", param=name)
        if value < 0:
            msg = f"Invalid '{name}': expected a value >= 0, but got {value}."
            raise InvalidRequestError(msg, code="integer_below_min_value", param=name)
        if value > MAX_TOKENS_LIMIT:
            msg = (
                f"Invalid '{name}': expected a value <= {MAX_TOKENS_LIMIT}, "
                f"but got {value}."
            )
            raise InvalidRequestError(msg, code="integer_above_max_value", param=name)
        found = value if found is None else max(found, value)
    return found


def _endpoint(method: str, path: str) -> int:
    """Whether the request must name its model, may omit it, or neither."""
    if method != "POST":
        return _OTHER_ENDPOINT
    path = path.rstrip("/")
    if path.endswith(_MODEL_SUFFIXES):
        return _MODEL_ENDPOINT
    if path.endswith(_OPTIONAL_MODEL_SUFFIXES):
        return _OPTIONAL_MODEL_ENDPOINT
    return _OTHER_ENDPOINT


def _read_body(body: bytes, endpoint: int) -> dict[str, Any] | None:
    """
    The JSON object of *body*, or ``None`` for a body that is not JSON on an
    endpoint that takes no model.
    """
    if len(body) > MAX_JSON_BYTES:
        raise RequestTooLargeError(MAX_JSON_BYTES, len(body))
    try:
        doc = parse_json(body)
    except ValueError as exc:
        if endpoint == _OTHER_ENDPOINT and not _JSON_START.match(body):
            return None
        msg = f"We could not parse the JSON body of your request: {exc}"
        raise InvalidRequestError(msg, code="invalid_json") from None
    if isinstance(doc, dict):
        return doc
    if endpoint == _OTHER_ENDPOINT:
        return None
    msg = "The body of your request must be a JSON object."
    raise InvalidRequestError(msg, code="invalid_body")


#: The members the policy reads. An object that names one of them twice could
#: be read one way here (the last value wins) and another way by the app or
#: upstream (some parsers keep the first), so such a body is refused.
_POLICY_MEMBERS = frozenset(
    {
        "model",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "stream",
        "stream_options",
        "include_usage",
    }
)
_POLICY_MEMBER_NAMES = {name: f'"{name}"'.encode() for name in _POLICY_MEMBERS}


def _may_repeat_a_member(body: bytes, doc: dict[str, Any]) -> bool:
    """
    Whether *body* may name a policy member twice: it does not when it is
    plain UTF-8 without ``\\u`` escapes (the only way to spell a name
    otherwise) and each policy member it holds appears once in its bytes.
    """
    if (b"\\" in body and b"\\u" in body) or b"\x00" in body:
        return True
    if body.startswith(codecs.BOM_UTF8):
        return True
    options = doc.get("stream_options")
    present = [name for name in doc if name in _POLICY_MEMBERS]
    if isinstance(options, dict) and "include_usage" in options:
        present.append("include_usage")
    for name in present:
        quoted = _POLICY_MEMBER_NAMES[name]
        first = body.find(quoted)
        if first >= 0 and body.find(quoted, first + len(quoted)) >= 0:
            return True
    return False


def _check_repeated_members(body: bytes, doc: dict[str, Any]) -> None:
    """
    Refuse a body in which an object names a policy member twice.

    Raises:
        InvalidRequestError: ``duplicate_member``, with the member as *param*.
    """
    if not _may_repeat_a_member(body, doc):
        return
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for name, _ in items:
            if name in seen and name in _POLICY_MEMBERS and not repeated:
                repeated.append(name)
            seen.add(name)
        return dict(items)

    # parse_json has read this body already: its depth and numbers are bounded.
    json.loads(body, object_pairs_hook=pairs)
    if repeated:
        name = repeated[0]
        msg = f"The body of your request names {name!r} more than once."
        raise InvalidRequestError(msg, code="duplicate_member", param=name)


def _model_of(doc: dict[str, Any], endpoint: int) -> str:
    model = doc.get("model")
    if isinstance(model, str) and model:
        return model
    if model is not None and not isinstance(model, str):
        msg = (
            f"Invalid type for 'model': expected a string, not {type(model).__name__}."
        )
        raise InvalidRequestError(msg, code="invalid_model", param="model")
    if endpoint == _MODEL_ENDPOINT:
        msg = "You must provide a model parameter."
        raise InvalidRequestError(msg, code="missing_model", param="model")
    return ""


def inspect_request(
    method: str, path: str, body: bytes, options: PolicyOptions
) -> RequestInfo:
    """
    Read the model, the token estimate and the streaming flags from a body,
    or refuse a body the policy cannot fully read (see the module doc).

    A body that is not JSON, on an endpoint that takes no model, passes
    unchanged and reserves ``options.default_estimate``; an empty body there
    reserves nothing. For a streamed ``…/chat/completions`` or
    ``…/completions`` request without ``stream_options.include_usage``, and
    ``options.include_usage`` on, the body is rewritten to ask for it and
    *drop_usage_only* is set; otherwise *body* is the very object given.

    Raises:
        InvalidRequestError: the body is not JSON the policy can read, a
            model is missing or not a string, or a completion allowance is
            not an integer from 0 to `MAX_TOKENS_LIMIT`.
        RequestTooLargeError: the body is JSON larger than ``MAX_JSON_BYTES``.

    .. versionadded:: 0.1.0
    """
    endpoint = _endpoint(method, path)
    if not body and endpoint == _OTHER_ENDPOINT:
        return RequestInfo(body=body)
    doc = _read_body(body, endpoint)
    if doc is None:
        return RequestInfo(reserve=options.default_estimate, body=body)
    _check_repeated_members(body, doc)
    model = _model_of(doc, endpoint)
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
            # parse_json's limits (depth, valid Unicode) make this total.
            body = json.dumps(doc, ensure_ascii=False).encode()
            drop = True
    return RequestInfo(
        model,
        prompt,
        prompt + completion,
        stream,
        drop,
        body,
        drop,
        mangled,
        default_model=not model,
    )


def inspect_for_metering(
    method: str, path: str, body: bytes, options: PolicyOptions
) -> RequestInfo:
    """
    `inspect_request` for middleware that only meters and refuses nothing:
    a body the policy cannot read goes to the app unchanged, with
    ``options.default_estimate``. Never raises.

    .. versionadded:: 0.1.0
    """
    try:
        return inspect_request(method, path, body, options)
    except (InvalidRequestError, RequestTooLargeError):
        return RequestInfo(reserve=options.default_estimate, body=body)


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
    exc: BaseException,
    headers: list[tuple[str, str]] | None = None,
    *,
    request_id: str | None = None,
) -> ErrorResponse:
    """
    Build the OpenAI-shaped response for *exc*.

    The body is ``{"error": {"message", "type", "param", "code"}}`` (an
    `InvalidRequestError` gives its own ``code`` and ``param``); a
    `RateLimitedError` adds ``Retry-After`` in whole seconds (at least 1).
    *headers* (the ``x-ratelimit-*`` ones) are added. With *request_id*,
    the response carries it as ``x-request-id`` and the body as
    ``error.request_id``.

    .. versionadded:: 0.1.0
    """
    status, kind, code = status_for(exc)
    message = str(exc) if isinstance(exc, CloudError) else SERVER_ERROR_MESSAGE
    param = None
    if isinstance(exc, InvalidRequestError):
        code, param = exc.code, exc.param
    out = [("content-type", "application/json")]
    if isinstance(exc, RateLimitedError):
        kind = exc.limit
        wait = exc.retry_after
        seconds = math.ceil(wait) if math.isfinite(wait) else 60
        out.append(("retry-after", str(max(1, seconds))))
    if headers:
        out.extend(headers)
    if request_id is not None:
        out.append(("x-request-id", request_id))
    body = openai_error_body(message, kind, code, param=param, request_id=request_id)
    out.append(("content-length", str(len(body))))
    return ErrorResponse(status, out, body)


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


def client_request_id(value: str | bytes | None) -> str | None:
    """
    The client's own ``x-request-id``, kept as a correlation id: 1 to
    `zerfoo_cloud.metering.MAX_REQUEST_ID_LENGTH` visible ASCII characters,
    else ``None`` (dropped). It is logged with the request, never used as
    its id.

    .. versionadded:: 0.1.0
    """
    if not value or len(value) > MAX_REQUEST_ID_LENGTH:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not (text.isascii() and text.isprintable()) or " " in text:
        return None
    return text


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

        Order: the model allow list, then the reservation against the whole
        token budget, then a concurrency slot, one request and the token
        reservation in one atomic step (`Tenant.begin_request`). A refusal
        by one limit leaves the others untouched.

        Raises:
            InvalidRequestError: the request lets the app choose its model
                and the tenant has an allow list.
            ModelNotAllowedError: the model is not in the allow list.
            RequestOverBudgetError: the reservation exceeds the tenant's
                whole token budget (no wait would let it pass).
            RateLimitedError: a limit refused it.
        """
        model = info.model
        record = tenant.record
        if info.default_model and record.model_allow_list:
            msg = (
                "You must provide a model parameter: this key may use only some models."
            )
            raise InvalidRequestError(msg, code="missing_model", param="model")
        if model and (
            not tenant.model_allowed(model)
            or (info.mangled and record.model_allow_list)
        ):
            raise ModelNotAllowedError(tenant.id, model)
        budget = record.token_budget
        reserve = info.reserve
        if budget and reserve > budget:
            raise RequestOverBudgetError(tenant.id, model, budget, reserve)
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

    def refusal(
        self,
        exc: BaseException,
        tenant: Tenant | None,
        *,
        request_id: str | None = None,
    ) -> ErrorResponse:
        """
        The response refusing a request with *exc*, with quota headers
        (none when they cannot be read) and *request_id*.
        """
        if isinstance(exc, RateLimitedError):
            headers = rate_limit_headers(exc.requests, exc.tokens)
        else:
            try:
                headers = self.quota_headers(tenant)
            except Exception:  # noqa: BLE001 - the refusal goes out without them
                headers = []
        return error_response(exc, headers, request_id=request_id)

    def refuse(
        self,
        exc: BaseException,
        tenant: Tenant | None,
        request: tuple[str, str, str, str],
        *,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[ErrorResponse, Finished]:
        """
        The response refusing a request with *exc*, and the record of it.

        *request* is ``(model, method, path, remote_addr)``; *request_id*
        is sent as ``x-request-id`` and in the error body.
        """
        refusal = self.refusal(exc, tenant, request_id=request_id)
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
            request_id=request_id,
            correlation_id=correlation_id,
        )
        return refusal, finished

    def finisher(
        self,
        ticket: Ticket,
        slot: UsageSlot,
        request: tuple[str, str, str],
        *,
        correlation_id: str | None = None,
    ) -> Callable[[int, ResponseMeter | None], Finished]:
        """
        Return ``finish(status, meter)``: settles *ticket* and returns the
        record of the request. *request* is ``(method, path, remote_addr)``.

        ``finish`` never raises: it is the one step that accounts an
        admitted request, so it must run to its end. The usage is the one
        the app reported in *slot*, else the one *meter* saw, else
        `fallback_usage`; a step that raises is skipped and named in
        `Finished.failures` (a failed usage extraction, or *meter* ``None``
        for a response the meter could not follow, bills the reservation
        unless the app reported its usage);
        the counts are clamped to what a billing record holds
        (`clamp_usage`); and when `settle` raises, the slot and the
        reservation are settled one by one instead.
        """
        method, path, remote = request

        def finish(status: int, meter: ResponseMeter | None) -> Finished:
            failures: list[str] = []
            usage, streamed = _measured(slot, meter, failures)
            billed = usage or fallback_usage(ticket.info, status, streamed)
            billed, clamped = clamp_usage(billed)
            try:
                self.settle(ticket, billed, status, streamed)
            except Exception as exc:  # noqa: BLE001 - settled step by step below
                failures.append(describe_failure("settlement", exc))
                failures.extend(_settle_apart(ticket, billed.total_tokens))
            return Finished(
                ticket.tenant.id,
                billed,
                ticket.info.model,
                status,
                method,
                path,
                remote,
                request_id=ticket.request_id,
                correlation_id=correlation_id,
                clamped=clamped,
                failures=tuple(failures),
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
            _unpin(ticket)
        return billed


def describe_failure(step: str, exc: BaseException) -> str:
    """
    Name a failed step of the request path for a log line: the step and the
    exception's type, never its message (which may quote a request).

    .. versionadded:: 0.1.0
    """
    return f"{step} ({type(exc).__name__})"


def _measured(
    slot: UsageSlot, meter: ResponseMeter | None, failures: list[str]
) -> tuple[Usage | None, int]:
    """
    The usage reported or seen, and the streamed events; a step that raises
    counts as having found nothing and is added to *failures*.
    """
    try:
        usage = slot.get()
    except Exception as exc:  # noqa: BLE001 - named in failures; the reservation is billed
        failures.append(describe_failure("usage report", exc))
        return None, 0
    if meter is None:
        # The response could not be metered (the adapter reported why).
        return usage, 0
    try:
        if usage is None:
            usage = meter.usage()
        streamed = meter.streamed_events
    except Exception as exc:  # noqa: BLE001 - named in failures; the reservation is billed
        failures.append(describe_failure("usage extraction", exc))
        return None, 0
    return usage, streamed


def _unpin(ticket: Ticket) -> None:
    pin, ticket.pin = ticket.pin, None
    if pin is not None:
        pin.__exit__(None, None, None)


def _settle_apart(ticket: Ticket, used: int) -> list[str]:
    """
    Settle *ticket* one step at a time, after `Policy.settle` failed: give
    the slot back, reconcile the reservation, unpin the model. Returns the
    steps that failed too.
    """
    ticket.settled = True
    tenant = ticket.tenant
    failed = []
    try:
        tenant.release_concurrent()
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        failed.append(describe_failure("slot release", exc))
    try:
        if used < ticket.reserved:
            tenant.refund_tokens(ticket.reserved - used)
        elif used > ticket.reserved:
            tenant.deduct_tokens(used - ticket.reserved)
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        failed.append(describe_failure("token reconciliation", exc))
    try:
        _unpin(ticket)
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        failed.append(describe_failure("model unpin", exc))
    return failed


def clamp_usage(usage: Usage) -> tuple[Usage, bool]:
    """
    Return *usage* with each count cut to `zerfoo_cloud.metering.MAX_TOKENS`
    (the most a billing record holds), and whether a count was cut.

    An app or upstream that reports more (``prompt_tokens = 2**64``) is
    billed the most a record can hold, never nothing.

    .. versionadded:: 0.1.0
    """
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    if prompt <= MAX_TOKENS and completion <= MAX_TOKENS:
        return usage, False
    return Usage(
        min(prompt, MAX_TOKENS), min(completion, MAX_TOKENS), usage.source
    ), True


class Finished(NamedTuple):
    """
    One finished request, as the accounting records it.

    *usage* is ``None`` for a refused request (it is audited, not billed).
    *request_id* is the id the client was sent (``x-request-id``) and, for
    an admitted request, its billing record's id; *correlation_id* is the
    client's own ``x-request-id`` when it sent a valid one (logged, never
    used as the id). *clamped* says the usage was cut to what a billing
    record holds (`clamp_usage`); *failures* names the steps of accounting
    that raised (each is logged and counted once).

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
    correlation_id: str | None = None
    clamped: bool = False
    failures: tuple[str, ...] = ()


def metering_finisher(
    info: RequestInfo, slot: UsageSlot, tenant_id: str, request: tuple[str, str, str]
) -> Callable[[int, ResponseMeter | None], Finished]:
    """
    Return ``finish(status, meter)`` for metering without limits: the usage
    reported in *slot*, else the one *meter* saw, else `fallback_usage`,
    clamped as `clamp_usage` does. Like `Policy.finisher`, it never raises.
    *request* is ``(method, path, remote_addr)``.

    .. versionadded:: 0.1.0
    """
    method, path, remote = request

    def finish(status: int, meter: ResponseMeter | None) -> Finished:
        failures: list[str] = []
        usage, streamed = _measured(slot, meter, failures)
        billed, clamped = clamp_usage(usage or fallback_usage(info, status, streamed))
        return Finished(
            tenant_id,
            billed,
            info.model,
            status,
            method,
            path,
            remote,
            clamped=clamped,
            failures=tuple(failures),
        )

    return finish
