"""
The top-level ``usage`` object of a JSON document fed in pieces, found by an
incremental scanner (`JSONUsageScanner`) that keeps only the ``usage`` value,
for bodies too large to keep whole.

Sans-IO and total: no document, however malformed, deep or large, makes it
raise. The captured value is read by `zerfoo_cloud.http._json.parse_json`,
within its limits.
"""

from __future__ import annotations

import re

from zerfoo_cloud.http._json import parse_json
from zerfoo_cloud.http._usage import usage_from_mapping

__all__ = ["JSONUsageScanner"]

#: A top-level ``usage`` value larger than this is ignored (real ones are tiny).
_MAX_USAGE_BYTES = 1 << 16

_STRUCTURE = re.compile(rb'["{}\[\]:,]')
_STRING_STOP = re.compile(rb'["\\]')

_COLON = ord(":")
_QUOTE = ord('"')
_BACKSLASH = ord("\\")
_OPENERS = (ord("{"), ord("["))
_CLOSERS = (ord("}"), ord("]"))
_OPEN_OBJECT = ord("{")


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
