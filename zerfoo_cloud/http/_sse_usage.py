"""
The ``usage`` of a stream of server-sent events, read by an incremental
parser (`SSEUsageParser`) that accepts events split anywhere, CRLF, LF or CR
line ends, comments and multi-line data, and that can drop the usage-only
chunk a client did not ask for.

Sans-IO and total: bytes in, bytes and numbers out; no stream, however
malformed, makes it raise. Event data is read by
`zerfoo_cloud.http._json.parse_json`, within its limits.
"""

from __future__ import annotations

import re

from zerfoo_cloud.http._json import parse_json
from zerfoo_cloud.http._usage import usage_from_mapping

__all__ = ["SSEUsageParser"]

_EOL = re.compile(rb"\r\n|\r|\n")
_USAGE_KEY_BYTES = b'"usage"'
_USAGE_NULL = re.compile(rb'"usage"\s*:\s*null')
_DONE = b"[DONE]"
_CR = ord("\r")
_COLON = ord(":")


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
