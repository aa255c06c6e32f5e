"""
The HTTP plumbing of the admin API: requests, responses, bodies, cookies.

Pure ASGI, no framework. Every error a client can cause becomes an
`HTTPProblem`, answered in OpenAI's error shape
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from datetime import datetime, timezone
from typing import Any, TypeAlias

import attrs

from zerfoo_cloud._openai_error import openai_error_body
from zerfoo_cloud.http._audit_result import audit_result

__all__ = [
    "CREDENTIAL_HEADERS",
    "Disconnected",
    "HTTPProblem",
    "Request",
    "Response",
    "audit_result",
    "empty_response",
    "error_response",
    "json_response",
    "parse_form",
    "parse_json_object",
    "parse_query",
    "read_body",
    "send_response",
    "set_cookie",
    "too_large",
]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]

#: Headers that carry credentials: a request sending one twice is refused,
#: since two readers could take different ones.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})
#: At most this many query parameters or form fields are read.
MAX_FIELDS = 32
#: JSON bodies may nest at most this deep.
MAX_JSON_DEPTH = 32
#: Headers every response carries: nothing here may be cached or sniffed.
_COMMON_HEADERS = (
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
)
_CLIENT_ERROR_TYPE = "invalid_request_error"
_SERVER_ERROR_TYPE = "server_error"
_FIRST_SERVER_ERROR = 500


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


class Disconnected(Exception):  # noqa: N818 - a client event, not a fault
    """
    The client went away before its body was read.
    """


@attrs.frozen
class Request:
    """
    What the admin API reads of an HTTP request.

    *segments* are the path's percent-decoded segments (from ``raw_path``
    when the server gives it, so an encoded ``/`` stays inside a segment);
    *headers* hold the first value of each header, names in lower case,
    but ``cookie``, which joins every ``Cookie`` header with ``; `` (as
    HTTP/2 allows them split); *repeated* names the headers of
    `CREDENTIAL_HEADERS` sent more than once.
    """

    method: str
    path: str
    segments: tuple[str, ...]
    query_string: bytes
    headers: Mapping[str, str]
    client: str
    repeated: tuple[str, ...] = ()

    @classmethod
    def from_scope(cls, scope: Scope) -> Request:
        """
        Read an ASGI ``http`` scope.
        """
        raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8")
        raw = raw.split(b"?", 1)[0]
        segments = tuple(
            urllib.parse.unquote(part.decode("latin-1"), errors="replace")
            for part in raw.split(b"/")[1:]
        )
        headers: dict[str, str] = {}
        cookies: list[str] = []
        repeated: list[str] = []
        for raw_name, raw_value in scope.get("headers", ()):
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name == "cookie":
                cookies.append(value)
            elif name not in headers:
                headers[name] = value
            elif name in CREDENTIAL_HEADERS and name not in repeated:
                repeated.append(name)
        if cookies:
            headers["cookie"] = "; ".join(cookies)
        client = scope.get("client") or ("", 0)
        return cls(
            method=scope.get("method", "GET").upper(),
            path=scope.get("path", ""),
            segments=segments,
            query_string=scope.get("query_string", b""),
            headers=headers,
            client=str(client[0] or ""),
            repeated=tuple(repeated),
        )

    def _cookies(self) -> list[tuple[str, str]]:
        found = []
        for part in self.headers.get("cookie", "").split(";"):
            key, sep, value = part.strip().partition("=")
            if sep:
                found.append((key, value.strip().strip('"')))
        return found

    def cookie(self, name: str) -> str | None:
        """
        The value of cookie *name* (the first, if sent twice), or ``None``.
        """
        for key, value in self._cookies():
            if key == name:
                return value
        return None

    def cookie_count(self, name: str) -> int:
        """
        How many times cookie *name* was sent.
        """
        return sum(1 for key, _ in self._cookies() if key == name)


@attrs.frozen
class Response:
    """
    A complete response: status, headers and body.
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    msg = f"cannot encode {type(value).__name__} as JSON"  # pragma: no cover
    raise TypeError(msg)  # pragma: no cover


def json_response(
    status: int, data: object, *, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """
    A JSON response (datetimes as ISO 8601 in UTC).
    """
    body = json.dumps(
        data, separators=(",", ":"), ensure_ascii=False, default=_json_default
    ).encode("utf-8")
    return Response(status, (("content-type", "application/json"), *headers), body)


def empty_response(status: int, *, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """
    A response without a body (204, 302).
    """
    return Response(status, tuple(headers))


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
    return Response(status, (("content-type", "application/json"), *headers), body)


def too_large(limit: int) -> HTTPProblem:
    """
    The 413 problem for a body over *limit* bytes.
    """
    return HTTPProblem(
        413, "request_too_large", f"the request body is larger than {limit} bytes"
    )


async def read_body(request: Request, receive: Receive, limit: int) -> bytes:
    """
    Read the whole body, at most *limit* bytes.

    Raises:
        HTTPProblem: 413 past *limit* (from ``Content-Length`` before
            reading, or while reading), 400 for a malformed
            ``Content-Length``.
        Disconnected: the client went away.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit() or len(declared) > 19:  # noqa: PLR2004 - int64
            raise HTTPProblem(
                400, "invalid_content_length", "Content-Length is not a number"
            )
        if int(declared) > limit:
            raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_response(send: Send, response: Response) -> None:
    """
    Send *response* with its ``content-length`` and the common headers.
    """
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in (
            *response.headers,
            *_COMMON_HEADERS,
            ("content-length", str(len(response.body))),
        )
    ]
    await send(
        {"type": "http.response.start", "status": response.status, "headers": headers}
    )
    await send({"type": "http.response.body", "body": response.body})


def _pairs(text: str, what: str) -> dict[str, str]:
    try:
        pairs = urllib.parse.parse_qsl(
            text, keep_blank_values=True, max_num_fields=MAX_FIELDS
        )
    except ValueError as exc:
        msg = f"the {what} has more than {MAX_FIELDS} fields"
        raise HTTPProblem(400, "invalid_request", msg) from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            msg = f"{name!r} appears more than once in the {what}"
            raise HTTPProblem(400, "invalid_request", msg, param=name)
        fields[name] = value
    return fields


def parse_query(request: Request, allowed: Iterable[str]) -> dict[str, str]:
    """
    The query parameters, each at most once and each one of *allowed*.

    Raises:
        HTTPProblem: 400 for a repeated or unknown parameter.
    """
    fields = _pairs(request.query_string.decode("latin-1"), "query string")
    known = set(allowed)
    for name in fields:
        if name not in known:
            msg = f"unknown query parameter {name!r}; known: {', '.join(sorted(known))}"
            raise HTTPProblem(400, "unknown_parameter", msg, param=name)
    return fields


def parse_form(body: bytes) -> dict[str, str]:
    """
    An ``application/x-www-form-urlencoded`` body, each field at most once.

    Raises:
        HTTPProblem: 400 for a body that is not such a form.
    """
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        msg = "the body is not an URL-encoded form"
        raise HTTPProblem(400, "invalid_request", msg) from exc
    return _pairs(text, "form")


def _depth(value: object, limit: int) -> bool:
    """
    Whether *value* nests at most *limit* containers deep.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > limit:
                return False
            stack.extend((child, depth + 1) for child in item)
    return True


def _no_constants(name: str) -> object:
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """
    The body as a JSON object.

    Raises:
        HTTPProblem: 400 for an empty body, invalid JSON (``NaN`` included),
            nesting over `MAX_JSON_DEPTH`, or anything but an object.
    """
    if not body.strip():
        raise HTTPProblem(400, "invalid_json", "the body must be a JSON object")
    try:
        data = json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        # RecursionError: json's C parser refuses very deep nesting this way.
        msg = "the body is not valid JSON"
        raise HTTPProblem(400, "invalid_json", msg) from exc
    if not isinstance(data, dict):
        raise HTTPProblem(400, "invalid_json", "the body must be a JSON object")
    if not _depth(data, MAX_JSON_DEPTH):
        msg = f"the body nests deeper than {MAX_JSON_DEPTH} levels"
        raise HTTPProblem(400, "invalid_json", msg)
    return data


def set_cookie(
    name: str, value: str, *, max_age: int, path: str, same_site: str
) -> tuple[str, str]:
    """
    A ``Set-Cookie`` header: always ``HttpOnly`` and ``Secure``.
    """
    attributes = (
        f"Max-Age={max_age}; Path={path}; HttpOnly; Secure; SameSite={same_site}"
    )
    return ("set-cookie", f"{name}={value}; {attributes}")
