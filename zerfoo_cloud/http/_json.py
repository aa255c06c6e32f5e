"""
Total, bounded JSON parsing of request and response bodies.

`parse_json` reads what ``json.loads`` reads, as it reads it (integers past
64 bits stay exact), within documented limits, and on any input either
returns a value or raises `ValueError`: never ``RecursionError``,
``MemoryError``, ``UnicodeError`` or anything else.

Limits:

- `MAX_JSON_BYTES`: the size of a document.
- `MAX_JSON_DEPTH`: how deep arrays and objects nest (a document ``[1]`` is
  one deep). Far below the interpreter's recursion limit, so the code that
  walks or re-encodes a parsed document never meets it either.
- `MAX_JSON_NUMBER_CHARS`: the characters of one number literal (Python
  itself refuses integers past 4,300 digits).
- Every string must be valid Unicode without lone surrogates (``"\\udc00"``
  is refused), so a parsed document can always be encoded as UTF-8 again.

Fast path: orjson parses documents without a run of 19 or more digits (it
reads integers past 64 bits as floats). The rest (long numbers, ``NaN``,
``Infinity``, ``1e400``, UTF-16 and UTF-32 text, a UTF-8 byte order mark)
goes to ``json.loads`` once the limits have been checked.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_JSON_NUMBER_CHARS",
    "JSONLimitError",
    "parse_json",
]

#: The largest document `parse_json` reads, in bytes (32 MiB, the default
#: request body limit).
MAX_JSON_BYTES = 32 * 1024 * 1024
#: How deep arrays and objects may nest.
MAX_JSON_DEPTH = 128
#: The most characters one number literal may have (sign, digits, point,
#: exponent).
MAX_JSON_NUMBER_CHARS = 100


class JSONLimitError(ValueError):
    """
    A document is well-formed or not, but it passes one of the limits of
    `parse_json`; the message says which.

    .. versionadded:: 0.1.0
    """


#: Maps every digit to ``0`` (no other byte is ``0``): a run of 19 digits,
#: an integer orjson may turn into a float (past 64 bits), becomes
#: `_LONG_RUN`. ``translate`` and ``in`` find it several times faster than a
#: regular expression.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19

#: Keeps quotes and brackets (braces become brackets: only depth matters).
_SKELETON = bytes.maketrans(b"{}", b"[]")
_NOT_SKELETON = bytes(b for b in range(256) if b not in b'"[]{}')
_STRING = re.compile(rb'"[^"]*"')
#: Empty strings, or two strings that touch once all but quotes and brackets
#: is gone (their text is string text either way).
_ADJACENT_QUOTES = b'""'
_ESCAPED_BACKSLASH = b"\\\\"
_ESCAPED_QUOTE = b'\\"'
_LEAF = b"[]"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _too_deep(data: bytes) -> bool:
    """
    Whether the valid UTF-8 JSON text *data*, holding more than
    `MAX_JSON_DEPTH` openers, nests past `MAX_JSON_DEPTH`.

    Escapes are removed, then everything but quotes and brackets, then the
    strings (most are empty by then); each round of removing the empty pairs ``[]`` (the leaves)
    lowers the height of what is left by exactly one.
    """
    if b"\\" in data:
        data = data.replace(_ESCAPED_BACKSLASH, b"").replace(_ESCAPED_QUOTE, b"")
    skeleton = data.translate(_SKELETON, _NOT_SKELETON).replace(_ADJACENT_QUOTES, b"")
    if b'"' in skeleton:  # strings holding brackets
        skeleton = _STRING.sub(b"", skeleton)
    for _ in range(MAX_JSON_DEPTH):
        if not skeleton:
            return False
        skeleton = skeleton.replace(_LEAF, b"")
    return bool(skeleton)


def _deep_error() -> JSONLimitError:
    return JSONLimitError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")


def _number(text: str) -> None:
    if len(text) > MAX_JSON_NUMBER_CHARS:
        msg = f"a JSON number longer than {MAX_JSON_NUMBER_CHARS} characters"
        raise JSONLimitError(msg)


def _int(text: str) -> int:
    _number(text)
    return int(text)


def _float(text: str) -> float:
    _number(text)
    return float(text)


def _check_strings(value: object) -> None:
    """Raise `ValueError` if a string of *value* (a key too) has a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode()  # UnicodeEncodeError is a ValueError
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _parse_exactly(data: bytes) -> Any:
    """The ``json.loads`` path, within the limits."""
    # Decoding strictly refuses surrogates encoded as UTF-8 bytes, which
    # json.loads lets through.
    text = data.decode(json.detect_encoding(data))
    utf8 = text.encode()
    if utf8.count(b"[") + utf8.count(b"{") > MAX_JSON_DEPTH and _too_deep(utf8):
        raise _deep_error()
    value = json.loads(text, parse_int=_int, parse_float=_float)
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        _check_strings(value)
    return value


def parse_json(data: bytes) -> Any:
    """
    Parse a JSON document given as bytes: what ``json.loads`` returns, or
    `ValueError`.

    The document must keep to the limits of this module (size, depth,
    number length, no lone surrogates). Within them, the value equals what
    ``json.loads`` returns, integers of any length exact. On any input the
    function returns or raises `ValueError`; nothing else.

    Raises:
        JSONLimitError: the document passes a limit.
        ValueError: *data* is not a JSON document.
    """
    if len(data) > MAX_JSON_BYTES:
        msg = f"a JSON document larger than {MAX_JSON_BYTES} bytes"
        raise JSONLimitError(msg)
    try:
        if _LONG_RUN not in data.translate(_DIGITS_TO_ZERO):
            try:
                value = orjson.loads(data)
            except orjson.JSONDecodeError:
                pass
            else:
                # No document nests deeper than its count of openers.
                if data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH and _too_deep(
                    data
                ):
                    raise _deep_error()
                return value
        return _parse_exactly(data)
    except (RecursionError, MemoryError) as exc:
        msg = f"a JSON document too large or too deep to read ({type(exc).__name__})"
        raise JSONLimitError(msg) from None
