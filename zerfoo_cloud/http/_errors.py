"""
OpenAI-shaped error responses: the status, type and code of an exception
(`status_for`, read from the attributes every `CloudError` carries) and the
response built from them (`error_response`), with ``Retry-After`` for a
refusal that says when to retry.
"""

from __future__ import annotations

import math

import attrs

from zerfoo_cloud._openai_error import SERVER_ERROR_MESSAGE, openai_error_body
from zerfoo_cloud.errors import CloudError, RequestRejectedError, StoreUnavailableError

__all__ = ["ErrorResponse", "error_response", "status_for"]


def status_for(exc: BaseException) -> tuple[int, str, str | None]:
    """
    Return ``(status, type, code)`` of the response to *exc*.

    A `CloudError` says them itself (`CloudError.http_status`,
    `CloudError.error_type`, `CloudError.error_code`); any other exception
    is a server failure, answered as a plain `CloudError` is (500,
    ``server_error``, ``internal_error``).

    .. versionadded:: 0.1.0
    """
    error = exc if isinstance(exc, CloudError) else CloudError
    return error.http_status, error.error_type, error.error_code


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

    The body is ``{"error": {"message", "type", "param", "code"}}``, with the
    status, type, code and param the exception carries (`status_for`); the
    message of an exception that is not a `CloudError` is not shown. A
    `RequestRejectedError` with a ``retry_after`` (a `RateLimitedError`)
    or a `StoreUnavailableError` adds ``Retry-After`` in whole seconds (at least 1; 60 for a wait that
    never ends). *headers* (the ``x-ratelimit-*`` ones) are added. With
    *request_id*, the response carries it as ``x-request-id`` and the body
    as ``error.request_id``.

    .. versionadded:: 0.1.0
    """
    status, kind, code = status_for(exc)
    if isinstance(exc, CloudError):
        message, param = str(exc), exc.error_param
    else:
        message, param = SERVER_ERROR_MESSAGE, None
    out = [("content-type", "application/json")]
    wait = (
        exc.retry_after
        if isinstance(exc, (RequestRejectedError, StoreUnavailableError))
        else None
    )
    if wait is not None:
        seconds = math.ceil(wait) if math.isfinite(wait) else 60
        out.append(("retry-after", str(max(1, seconds))))
    if headers:
        out.extend(headers)
    if request_id is not None:
        out.append(("x-request-id", request_id))
    body = openai_error_body(message, kind, code, param=param, request_id=request_id)
    out.append(("content-length", str(len(body))))
    return ErrorResponse(status, out, body)
