"""
The responses of the admin API and SSO endpoints, as Starlette responses.

Every error a client can cause becomes an `HTTPProblem`, answered in
OpenAI's error shape ``{"error": {"message", "type", "param", "code"}}``;
every response carries ``Cache-Control: no-store`` and
``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from starlette.responses import JSONResponse, Response

from zerfoo_cloud._openai_error import openai_error_body

__all__ = [
    "HTTPProblem",
    "bytes_response",
    "empty_response",
    "error_response",
    "json_response",
    "too_large",
]

#: Headers every response carries: nothing here may be cached or sniffed.
_COMMON_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
_CLIENT_ERROR_TYPE = "invalid_request_error"
_SERVER_ERROR_TYPE = "server_error"
_FIRST_SERVER_ERROR = 500


def _headers(extra: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {**dict(extra), **_COMMON_HEADERS}


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    msg = f"cannot encode {type(value).__name__} as JSON"  # pragma: no cover
    raise TypeError(msg)  # pragma: no cover


class _JSONResponse(JSONResponse):
    """
    Compact JSON, datetimes as ISO 8601 in UTC.
    """

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, separators=(",", ":"), ensure_ascii=False, default=_json_default
        ).encode("utf-8")


def json_response(
    status: int, data: object, *, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """
    A JSON response (datetimes as ISO 8601 in UTC).
    """
    return _JSONResponse(data, status, _headers(headers))


def bytes_response(status: int, body: bytes, media_type: str) -> Response:
    """
    A response of *body*, of type *media_type*.
    """
    return Response(body, status, _headers(()), media_type=media_type)


def empty_response(status: int, *, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """
    A response without a body (204, 302).
    """
    return Response(b"", status, _headers(headers))


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    param: str | None = None,
) -> Response:
    """
    An error in OpenAI's shape.
    """
    kind = _SERVER_ERROR_TYPE if status >= _FIRST_SERVER_ERROR else _CLIENT_ERROR_TYPE
    body = openai_error_body(message, kind, code, param=param)
    return Response(body, status, _headers(headers), media_type="application/json")


class HTTPProblem(Exception):  # noqa: N818 - a response, not a fault of the library
    """
    An error response to send: *status*, OpenAI error *code* and *message*.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = tuple(headers)
        self.param = param

    def response(self) -> Response:
        """
        The response this problem answers with.
        """
        return error_response(
            self.status, self.code, self.message, headers=self.headers, param=self.param
        )


def too_large(limit: int) -> HTTPProblem:
    """
    The 413 problem for a body over *limit* bytes.
    """
    return HTTPProblem(
        413, "request_too_large", f"the request body is larger than {limit} bytes"
    )
