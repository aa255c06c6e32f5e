"""
Where the token usage of a response comes from, read as the body passes.

In order of trust:

1. What the app reported through the request's usage slot with
   `zerfoo_cloud.http._usage.report_usage`; the caller checks it first.
2. The ``usage`` member of a JSON response body. Bodies of any size are read
   as they pass: up to `JSON_BUFFER_LIMIT` bytes are kept and parsed at the
   end; past that an incremental scanner
   (`zerfoo_cloud.http._json_usage.JSONUsageScanner`) finds the top-level
   ``usage`` object without keeping the body.
3. The ``usage`` of the server-sent events of a streamed response
   (`zerfoo_cloud.http._sse_usage.SSEUsageParser`).

Everything here is sans-IO: bytes in, bytes and numbers out. Reading is
total: no response, however malformed, deep or large, makes `ResponseMeter`
raise; a body it cannot read shows no usage, and the caller bills the
reservation (`zerfoo_cloud.http._settlement.fallback_usage`). JSON is read by
`zerfoo_cloud.http._json.parse_json`, within its limits.
"""

from __future__ import annotations

from typing import Any

from zerfoo_cloud.http._json import parse_json
from zerfoo_cloud.http._json_usage import JSONUsageScanner
from zerfoo_cloud.http._sse_usage import SSEUsageParser
from zerfoo_cloud.http._usage import Usage, usage_from_mapping

__all__ = ["JSON_BUFFER_LIMIT", "ResponseMeter"]

#: JSON bodies up to this many bytes are kept and parsed at once (fast);
#: larger ones are scanned incrementally (bounded memory).
JSON_BUFFER_LIMIT = 1 << 20

_NONE = 0
_JSON = 1
_SSE = 2


def _content_kind(content_type: bytes) -> int:
    media = content_type.split(b";", 1)[0].strip().lower()
    if media == b"text/event-stream":
        return _SSE
    if media == b"application/json" or media.endswith(b"+json"):
        return _JSON
    return _NONE


class ResponseMeter:
    """
    Watches one response body pass by and reports the usage it shows.

    Call `start` with the response's content type, `feed` each body piece
    (pass on what it returns), `close` at the end (pass on what it returns),
    then `usage`.

    Args:
        drop_usage_only: cut the usage-only SSE chunk out of the stream (the
            client did not ask for it; the middleware did).

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_buffered", "_kind", "_parts", "_scanner", "_sse", "drop_usage_only")

    def __init__(self, *, drop_usage_only: bool = False) -> None:
        self.drop_usage_only = drop_usage_only
        self._kind = _NONE
        self._parts: list[bytes] = []
        self._buffered = 0
        self._scanner: JSONUsageScanner | None = None
        self._sse: SSEUsageParser | None = None

    def start(self, content_type: bytes | str | None) -> None:
        """
        The response began with this ``Content-Type`` (``None`` if it has none).
        """
        if content_type is None:
            return
        if isinstance(content_type, str):
            content_type = content_type.encode("latin-1", "replace")
        self._kind = _content_kind(content_type)
        if self._kind == _SSE:
            self._sse = SSEUsageParser(drop_usage_only=self.drop_usage_only)

    def feed(self, chunk: bytes) -> bytes:
        """
        Read the next body piece; return the bytes to pass on.
        """
        kind = self._kind
        if kind == _SSE:
            assert self._sse is not None
            return self._sse.feed(chunk)
        if kind == _JSON and chunk:
            if self._scanner is not None:
                self._scanner.feed(chunk)
            else:
                self._parts.append(chunk)
                self._buffered += len(chunk)
                if self._buffered > JSON_BUFFER_LIMIT:
                    self._scanner = JSONUsageScanner()
                    for part in self._parts:
                        self._scanner.feed(part)
                    self._parts = []
        return chunk

    def close(self) -> bytes:
        """
        The body ended; return the bytes still held back (may be empty).
        """
        if self._sse is not None:
            return self._sse.close()
        return b""

    @property
    def streamed_events(self) -> int:
        """
        Content events of a streamed response seen so far (0 for other bodies).
        """
        return self._sse.events if self._sse is not None else 0

    @property
    def streaming(self) -> bool:
        """
        Whether the response is a server-sent event stream.
        """
        return self._kind == _SSE

    def usage(self) -> Usage | None:
        """
        The usage the body showed, or ``None``.
        """
        if self._kind == _SSE:
            assert self._sse is not None
            found = self._sse.usage
            return None if found is None else Usage(*found, "sse")
        if self._kind != _JSON:
            return None
        if self._scanner is not None:
            found = self._scanner.usage
        else:
            found = _usage_of_document(self._parts)
        return None if found is None else Usage(*found, "json")


def _usage_of_document(parts: list[bytes]) -> tuple[int, int] | None:
    if not parts:
        return None
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    try:
        doc: Any = parse_json(body)
    except ValueError:
        return None
    if isinstance(doc, dict):
        return usage_from_mapping(doc.get("usage"))
    return None
