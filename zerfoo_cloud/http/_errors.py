"""
OpenAI-shaped error responses: the status, type and code of each exception
(`EXCEPTION_STATUS`, `status_for`) and the response built from them
(`error_response`), with ``Retry-After`` for a `RateLimitedError`.
"""

from __future__ import annotations

import math

import attrs

from zerfoo_cloud._openai_error import SERVER_ERROR_MESSAGE, openai_error_body
from zerfoo_cloud.errors import (
    CloudError,
    DuplicateHeaderError,
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

__all__ = ["EXCEPTION_STATUS", "ErrorResponse", "error_response", "status_for"]

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
