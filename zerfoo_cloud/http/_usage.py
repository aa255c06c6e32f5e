"""
Where the token usage of a response comes from.

In order of trust:

1. What the app reported through the request's usage slot with
   `report_usage` (ASGI: ``scope["state"]["zerfoo_cloud.usage"]``; WSGI:
   ``environ["zerfoo_cloud.usage"]``).
2. The ``usage`` member of a JSON response body. Bodies of any size are read
   as they pass: up to `JSON_BUFFER_LIMIT` bytes are kept and parsed at the
   end; past that an incremental scanner (`JSONUsageScanner`) finds the
   top-level ``usage`` object without keeping the body.
3. The ``usage`` of the server-sent events of a streamed response, read by an
   incremental parser (`SSEUsageParser`) that accepts events split anywhere,
   CRLF, LF or CR line ends, comments and multi-line data, and that can drop
   the usage-only chunk a client did not ask for.

Everything here is sans-IO: bytes in, bytes and numbers out. Reading is
total: no response, however malformed, deep or large, makes these classes
raise; a body they cannot read shows no usage, and the caller bills the
reservation (`zerfoo_cloud.http._settlement.fallback_usage`). JSON is read by
`zerfoo_cloud.http._json.parse_json`, within its limits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http._json import parse_json

__all__ = [
    "JSON_BUFFER_LIMIT",
    "TENANT_KEY",
    "USAGE_KEY",
    "JSONUsageScanner",
    "ResponseMeter",
    "SSEUsageParser",
    "Usage",
    "UsageSlot",
    "report_usage",
    "usage_from_mapping",
]

#: The key of the usage slot in ``scope["state"]`` (ASGI) or in the environ (WSGI).
USAGE_KEY = "zerfoo_cloud.usage"
#: The key under which `CloudMiddleware` tells inner middleware the tenant id.
TENANT_KEY = "zerfoo_cloud.tenant_id"
#: JSON bodies up to this many bytes are kept and parsed at once (fast);
#: larger ones are scanned incrementally (bounded memory).
JSON_BUFFER_LIMIT = 1 << 20
#: A top-level ``usage`` value larger than this is ignored (real ones are tiny).
_MAX_USAGE_BYTES = 1 << 16

_EOL = re.compile(rb"\r\n|\r|\n")
_USAGE_KEY_BYTES = b'"usage"'
_USAGE_NULL = re.compile(rb'"usage"\s*:\s*null')
_DONE = b"[DONE]"
_STRUCTURE = re.compile(rb'["{}\[\]:,]')
_STRING_STOP = re.compile(rb'["\\]')


_NONE = 0
_JSON = 1
_SSE = 2

_CR = ord("\r")
_COLON = ord(":")
_COMMA = ord(",")
_QUOTE = ord('"')
_BACKSLASH = ord("\\")
_OPENERS = (ord("{"), ord("["))
_CLOSERS = (ord("}"), ord("]"))
_OPEN_OBJECT = ord("{")


@attrs.frozen
class Usage:
    """
    The token use of one response.

    *source* says where it came from: ``"reported"`` (`report_usage`),
    ``"json"``, ``"sse"`` or ``"estimate"``.

    .. versionadded:: 0.1.0
    """

    prompt_tokens: int
    completion_tokens: int
    source: str = "reported"

    @property
    def total_tokens(self) -> int:
        """
        Prompt plus completion tokens.
        """
        return self.prompt_tokens + self.completion_tokens


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def usage_from_mapping(value: object) -> tuple[int, int] | None:
    """
    Read ``(prompt_tokens, completion_tokens)`` from an OpenAI ``usage`` object.

    Accepts the chat/completions form (``prompt_tokens``,
    ``completion_tokens``), the embeddings form (``prompt_tokens``,
    ``total_tokens``) and the responses form (``input_tokens``,
    ``output_tokens``). Returns ``None`` for anything else, including negative
    or non-integer counts.

    .. versionadded:: 0.1.0
    """
    if not isinstance(value, Mapping):
        return None
    prompt = _count(value.get("prompt_tokens"))
    completion = _count(value.get("completion_tokens"))
    if prompt is None and completion is None:
        prompt = _count(value.get("input_tokens"))
        completion = _count(value.get("output_tokens"))
    if prompt is None:
        return None
    if completion is None:
        total = _count(value.get("total_tokens"))
        completion = max(0, total - prompt) if total is not None else 0
    return prompt, completion


def _check_counts(prompt_tokens: object, completion_tokens: object) -> None:
    for name, value in (
        ("prompt_tokens", prompt_tokens),
        ("completion_tokens", completion_tokens),
    ):
        if _count(value) is None:
            msg = f"{name} must be a non-negative integer, not {value!r}"
            raise InvalidConfigError(msg, field=name)


class UsageSlot:
    """
    The per-request place where an app reports its token use.

    The middleware puts one in every request (see `USAGE_KEY`); apps fill it
    through `report_usage`.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("completion_tokens", "prompt_tokens", "reported")

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.reported = False

    def __repr__(self) -> str:
        return (
            f"<UsageSlot reported={self.reported} prompt_tokens={self.prompt_tokens}"
            f" completion_tokens={self.completion_tokens}>"
        )

    def set(self, prompt_tokens: int, completion_tokens: int) -> None:
        """
        Record the counts; a later call replaces an earlier one.

        Raises:
            InvalidConfigError: a count is negative or not an integer.
        """
        _check_counts(prompt_tokens, completion_tokens)
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.reported = True

    def get(self) -> Usage | None:
        """
        The reported usage, or ``None`` if the app reported nothing.
        """
        if not self.reported:
            return None
        return Usage(self.prompt_tokens, self.completion_tokens, "reported")


def _slot_of(target: object) -> UsageSlot | None:
    if isinstance(target, Mapping):
        slot = target.get(USAGE_KEY)
        if slot is None:
            state = target.get("state")
            if isinstance(state, Mapping):
                slot = state.get(USAGE_KEY)
        return slot if isinstance(slot, UsageSlot) else None
    for name in ("scope", "environ"):
        inner = getattr(target, name, None)
        if isinstance(inner, Mapping):
            return _slot_of(inner)
    return None


def report_usage(target: object, prompt_tokens: int, completion_tokens: int) -> bool:
    """
    Report the token use of the current request to the wrapping middleware.

    This is the most trusted source of usage: it wins over the response's
    ``usage`` and covers what the response cannot show (a stream cut short
    by a client that went away). Call it before the response ends, or in a
    ``finally`` block of the generator that streams it.

    Args:
        target: the ASGI *scope*, the WSGI *environ*, or a framework request
            object that has either as ``.scope`` (Starlette, FastAPI) or
            ``.environ`` (Flask, Werkzeug).
        prompt_tokens: tokens read.
        completion_tokens: tokens generated.

    Returns:
        ``True`` if a middleware took the report, ``False`` when the app runs
        without one (the call is then harmless).

    Raises:
        InvalidConfigError: a count is negative or not an integer.

    .. versionadded:: 0.1.0
    """
    _check_counts(prompt_tokens, completion_tokens)
    slot = _slot_of(target)
    if slot is None:
        return False
    slot.set(prompt_tokens, completion_tokens)
    return True


class SSEUsageParser:
    """
    Reads the ``usage`` of a stream of server-sent events, fed in any pieces.

    Follows the event-stream grammar of the HTML standard: lines end with
    CRLF, LF or CR (a CRLF split between two pieces counts once), lines
    starting with ``:`` are comments, ``data`` lines of one event are joined
    with ``\\n``, a blank line ends the event. The data of each event is
    checked for a ``usage`` object (``[DONE]`` and events whose only usage is
    ``null`` are skipped without decoding them).

    With *drop_usage_only*, events that carry a usage and an empty
    ``choices`` list (the extra chunk of ``stream_options.include_usage``)
    are cut out of the bytes `feed` returns; an event is then passed on once
    its blank line has arrived.

    Attributes:
        usage: ``(prompt_tokens, completion_tokens)`` of the last event that
            had a usage, or ``None``.
        events: how many data events carried content (not ``[DONE]``, not a
            usage-only chunk); the fallback estimate of generated tokens.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_after_block",
        "_block_dropped",
        "_data",
        "_filter",
        "_held",
        "_partial",
        "_skip_lf",
        "events",
        "usage",
    )

    def __init__(self, *, drop_usage_only: bool = False) -> None:
        self._filter = drop_usage_only
        self._partial = b""
        self._data: list[bytes] = []
        self._skip_lf = False
        self._after_block = False
        self._block_dropped = False
        self._held = b""
        self.usage: tuple[int, int] | None = None
        self.events = 0

    def feed(self, chunk: bytes) -> bytes:
        """
        Parse *chunk*; return the bytes to pass on (all of *chunk* unless
        dropping usage-only events).
        """
        if (
            chunk[-2:] == b"\n\n"
            and chunk[:6] == b"data: "
            and not (self._partial or self._data or self._held or self._skip_lf)
            and chunk.count(b"\n") == 2  # noqa: PLR2004 - one data line, one blank
            and b"\r" not in chunk
        ):
            # The common case, one whole single-line event: no line splitting.
            drop = self._event(chunk[6:-2])
            self._after_block = True
            self._block_dropped = drop
            return b"" if drop else chunk
        out: list[bytes] = []
        pos = self._resume(chunk, out)
        # Raw bytes of the current block start at 0, unless the skipped LF
        # belonged to a block already decided.
        block_start = pos if self._after_block else 0
        partial = self._partial
        size = len(chunk)
        for match in _EOL.finditer(chunk, pos):
            start, end = match.span()
            line = partial + chunk[pos:start] if partial else chunk[pos:start]
            partial = b""
            pos = end
            if end == size and end - start == 1 and chunk[start] == _CR:
                self._skip_lf = True  # a CRLF may be split here
            if line:
                self._line(line)
                self._after_block = False
            else:
                block_start = self._end_block(chunk, block_start, end, out)
        self._partial = partial + chunk[pos:] if pos < size else partial
        if not self._filter:
            return chunk
        if block_start < size:
            self._held += chunk[block_start:]
        return out[0] if len(out) == 1 else b"".join(out)

    def _resume(self, chunk: bytes, out: list[bytes]) -> int:
        """Skip the LF of a CRLF split before *chunk*; return where to start."""
        if not self._skip_lf:
            return 0
        self._skip_lf = False
        if chunk[:1] != b"\n":
            return 0
        # The LF ends the blank line of a block already decided: it goes (or
        # vanishes) with that block. Otherwise it stays in the current one.
        if self._after_block and self._filter and not self._block_dropped:
            out.append(b"\n")
        return 1

    def _end_block(
        self, chunk: bytes, block_start: int, end: int, out: list[bytes]
    ) -> int:
        """A blank line ended a block at *end*; return where the next starts."""
        drop = self._dispatch() if self._data else False
        self._after_block = True
        self._block_dropped = drop
        if not self._filter:
            return block_start
        if not drop:
            if self._held:
                out.append(self._held)
            out.append(chunk[block_start:end])
        self._held = b""
        return end

    def close(self) -> bytes:
        """
        End of stream: read an unterminated last event (for its usage only)
        and return the bytes still held back, unchanged.
        """
        if self._partial:
            self._line(self._partial)
            self._partial = b""
        if self._data:
            self._filter = False  # an unterminated event is passed on as it is
            self._dispatch()
        held, self._held = self._held, b""
        return held

    def _line(self, line: bytes) -> None:
        if line[0] == _COLON:  # a comment
            return
        colon = line.find(b":")
        if colon < 0:
            if line == b"data":
                self._data.append(b"")
            return
        if line[:colon] != b"data":
            return
        value = line[colon + 1 :]
        if value[:1] == b" ":
            value = value[1:]
        self._data.append(value)

    def _dispatch(self) -> bool:
        parts = self._data
        self._data = []
        return self._event(parts[0] if len(parts) == 1 else b"\n".join(parts))

    def _event(self, data: bytes) -> bool:
        """Read one event's data; return whether to drop the event."""
        if data == _DONE:
            return False
        mentions = data.count(_USAGE_KEY_BYTES)
        if mentions and mentions != len(_USAGE_NULL.findall(data)):
            try:
                obj = parse_json(data)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                usage = usage_from_mapping(obj.get("usage"))
                if usage is not None:
                    self.usage = usage
                    if obj.get("choices") == []:
                        return self._filter
        self.events += 1
        return False


class JSONUsageScanner:
    """
    Finds the top-level ``usage`` object of a JSON document fed in pieces,
    without keeping the document.

    Tracks strings (with escapes), nesting and the keys of the outermost
    object; captures the value after a top-level ``"usage":`` and decodes it
    once it ends. Keys spelled with escapes are not recognised.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_capture",
        "_depth",
        "_escape",
        "_expect_key",
        "_from",
        "_in_string",
        "_key",
        "_last_key",
        "_object",
        "usage",
    )

    def __init__(self) -> None:
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._expect_key = False
        self._object = False
        self._key: bytearray | None = None
        self._last_key = b""
        self._capture: bytearray | None = None
        self._from = 0
        self.usage: tuple[int, int] | None = None

    def feed(self, chunk: bytes) -> None:
        """
        Scan the next piece of the document.
        """
        size = len(chunk)
        self._from = 0
        pos = 0
        if self._escape:
            self._escape = False
            pos = 1
            if self._key is not None:
                self._key += chunk[:1]
        while pos < size:
            if self._in_string:
                pos = self._string(chunk, pos, size)
                continue
            match = _STRUCTURE.search(chunk, pos)
            if match is None:
                break
            pos = match.end()
            self._structure(chunk, match.start())
        if self._capture is not None:
            self._capture += chunk[self._from :]
            if len(self._capture) > _MAX_USAGE_BYTES:
                self._capture = None

    def _string(self, chunk: bytes, pos: int, size: int) -> int:
        """Scan inside a string from *pos*; return where scanning goes on."""
        key = self._key
        match = _STRING_STOP.search(chunk, pos)
        if match is None:
            if key is not None:
                key += chunk[pos:]
            return size
        at = match.start()
        if chunk[at] == _BACKSLASH:  # skip the escaped byte, maybe in the next piece
            if key is not None:
                key += chunk[pos : at + 2]
            self._escape = at + 1 >= size
            return at + 2
        self._in_string = False
        if key is not None:
            key += chunk[pos:at]
            self._last_key = bytes(key)
            self._key = None
        return at + 1

    def _structure(self, chunk: bytes, at: int) -> None:
        """Handle the structural byte at *at*."""
        char = chunk[at]
        top = self._depth == 1
        if char == _QUOTE:
            self._in_string = True
            if top and self._expect_key:
                self._key = bytearray()
                self._expect_key = False
        elif char in _OPENERS:
            if self._depth == 0:
                self._object = char == _OPEN_OBJECT
                self._expect_key = self._object
            self._depth += 1
        elif char in _CLOSERS:
            if top and self._capture is not None:
                self._end_capture(chunk[self._from : at])
            self._depth -= 1
        elif top and self._object:
            self._separator(chunk, at)

    def _separator(self, chunk: bytes, at: int) -> None:
        """A ``:`` or ``,`` of the outermost object at *at*."""
        if chunk[at] == _COLON:
            if self._last_key == b"usage":
                self._capture = bytearray()
                self._from = at + 1
            self._last_key = b""
            return
        if self._capture is not None:
            self._end_capture(chunk[self._from : at])
        self._expect_key = True

    def _end_capture(self, tail: bytes) -> None:
        assert self._capture is not None
        self._capture += tail
        try:
            value = parse_json(bytes(self._capture))
        except ValueError:
            value = None
        self._capture = None
        usage = usage_from_mapping(value)
        if usage is not None:
            self.usage = usage


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
