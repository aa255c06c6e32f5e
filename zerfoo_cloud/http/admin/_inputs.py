"""
What the admin API reads of a request: its path segments, credentials,
cookies, body, query string and forms, on Starlette's `Request` (forms are
parsed by python-multipart, through Starlette's `FormParser`).

The path is routed on its percent-decoded segments (from ``raw_path`` when
the server gives it), so an encoded ``/`` stays inside its segment. Every
error a client can cause becomes an `HTTPProblem`.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncGenerator, Iterable, MutableMapping
from typing import Any

# Starlette parses forms with python-multipart, and only asserts it is there.
import python_multipart  # noqa: F401
from starlette.formparsers import FormParser, MultiPartException
from starlette.requests import Request, cookie_parser

from zerfoo_cloud.http.admin._responses import HTTPProblem, too_large

__all__ = [
    "CREDENTIAL_HEADERS",
    "MAX_FIELDS",
    "MAX_JSON_DEPTH",
    "client_of",
    "cookie",
    "form_fields",
    "json_object",
    "path_of",
    "query_fields",
    "read_body",
    "repeated_credential",
    "routing_scope",
    "segments_of",
]

#: Headers that carry credentials: a request sending one twice is refused,
#: since two readers could take different ones.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})
#: At most this many query parameters or form fields are read.
MAX_FIELDS = 32
#: JSON bodies may nest at most this deep.
MAX_JSON_DEPTH = 32
_SEGMENTS = "zerfoo_cloud.segments"
_PATH = "zerfoo_cloud.path"
_INT64_DIGITS = 19


def routing_scope(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    """
    A copy of an ASGI ``http`` *scope* whose ``path`` Starlette routes on:
    the decoded segments, each with only ``%`` and ``/`` encoded again.
    """
    raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8")
    parts = raw.split(b"?", 1)[0].decode("latin-1").split("/")[1:]
    if any("%" in part for part in parts):
        segments = tuple(urllib.parse.unquote(p, errors="replace") for p in parts)
        route = "/" + "/".join(
            s.replace("%", "%25").replace("/", "%2F") for s in segments
        )
    else:  # nothing to decode (the usual case)
        segments = tuple(parts)
        route = "/" + "/".join(parts)
    return {
        **scope,
        "path": route,
        "root_path": "",
        _SEGMENTS: segments,
        _PATH: scope.get("path", ""),
    }


def segments_of(request: Request) -> tuple[str, ...]:
    """
    The percent-decoded segments of the request's path.
    """
    segments: tuple[str, ...] = request.scope[_SEGMENTS]
    return segments


def path_of(request: Request) -> str:
    """
    The request path as the server decoded it.
    """
    return str(request.scope[_PATH])


def client_of(request: Request) -> str:
    """
    The client's address, ``""`` when the server does not give it.
    """
    client = request.client
    return "" if client is None else str(client.host or "")


def _cookie_names(request: Request) -> list[str]:
    return [
        part.partition("=")[0].strip()
        for header in request.headers.getlist("cookie")
        for part in header.split(";")
        if "=" in part
    ]


def cookie(request: Request, name: str) -> str | None:
    """
    The value of cookie *name*, read from every ``Cookie`` header (HTTP/2
    may split them), or ``None``.
    """
    return cookie_parser("; ".join(request.headers.getlist("cookie"))).get(name)


def repeated_credential(request: Request, cookies: Iterable[str]) -> str | None:
    """
    The credential *request* sends more than once (a header of
    `CREDENTIAL_HEADERS`, or one of *cookies*), if any: readers that take
    the first and readers that take the last would see different callers.
    """
    seen: set[str] = set()
    for raw_name, _ in request.headers.raw:
        name = raw_name.decode("latin-1").lower()
        if name in CREDENTIAL_HEADERS:
            if name in seen:
                return name
            seen.add(name)
    names = _cookie_names(request)
    for name in cookies:
        if names.count(name) > 1:
            return f"cookie {name}"
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """
    Read the whole body, at most *limit* bytes.

    Raises:
        HTTPProblem: 413 past *limit* (from ``Content-Length`` before
            reading, or while reading), 400 for a malformed
            ``Content-Length``.
        starlette.requests.ClientDisconnect: the client went away.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit() or len(declared) > _INT64_DIGITS:
            raise HTTPProblem(
                400, "invalid_content_length", "Content-Length is not a number"
            )
        if int(declared) > limit:
            raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _unique(pairs: Iterable[tuple[str, object]], what: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            msg = f"{name!r} appears more than once in the {what}"
            raise HTTPProblem(400, "invalid_request", msg, param=name)
        assert isinstance(value, str)  # an URL-encoded form has no files
        fields[name] = value
    return fields


def query_fields(request: Request, allowed: Iterable[str]) -> dict[str, str]:
    """
    The query parameters, each at most once and each one of *allowed*.

    Raises:
        HTTPProblem: 400 for more than `MAX_FIELDS`, a repeated or an
            unknown parameter.
    """
    if request.scope.get("query_string", b"").count(b"&") >= MAX_FIELDS:
        msg = f"the query string has more than {MAX_FIELDS} fields"
        raise HTTPProblem(400, "invalid_request", msg)
    fields = _unique(request.query_params.multi_items(), "query string")
    known = set(allowed)
    for name in fields:
        if name not in known:
            msg = f"unknown query parameter {name!r}; known: {', '.join(sorted(known))}"
            raise HTTPProblem(400, "unknown_parameter", msg, param=name)
    return fields


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


async def form_fields(request: Request, body: bytes) -> dict[str, str]:
    """
    The URL-encoded form *body* of *request* (whatever its Content-Type says:
    the SAML HTTP-POST binding sends no other), each field at most once.

    Raises:
        HTTPProblem: 400 for a body that is not ASCII, a repeated field or
            more than `MAX_FIELDS` fields.
    """
    if not body.isascii():
        msg = "the body is not an URL-encoded form"
        raise HTTPProblem(400, "invalid_request", msg)
    if body.count(b"&") >= MAX_FIELDS:
        msg = f"the form has more than {MAX_FIELDS} fields"
        raise HTTPProblem(400, "invalid_request", msg)
    parser = FormParser(
        request.headers,
        _once(body),
        max_fields=MAX_FIELDS,
        max_part_size=max(len(body), 1),
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:  # pragma: no cover - limits checked above
        msg = "the body is not an URL-encoded form"
        raise HTTPProblem(400, "invalid_request", msg) from exc
    return _unique(form.multi_items(), "form")


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


def json_object(body: bytes) -> dict[str, Any]:
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
