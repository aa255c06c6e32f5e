"""
Cleaning of the fields an audit entry holds: no key, query string or control
character gets into the log, timestamps are aware and in UTC, and cleaned
values are remembered.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from datetime import datetime, timezone

from zerfoo_cloud._redacted import REDACTED
from zerfoo_cloud.errors import InvalidConfigError

__all__ = ["INVALID", "MAX_PATH_LENGTH", "MAX_RESOURCE_LENGTH", "strip_query"]

#: What replaces a method or address that is not one.
INVALID = "<invalid>"
#: Paths longer than this are cut to this length (the last character "…").
MAX_PATH_LENGTH = 1024
#: Resources longer than this are cut to this length (the last character "…").
MAX_RESOURCE_LENGTH = 256

# API keys of this library ("zc-") and of OpenAI-style services ("sk-"):
# the prefix, not glued to a word before it, and 16 or more key characters.
_SECRET = re.compile(r"(?<![A-Za-z0-9])(?:zc|sk)-[A-Za-z0-9_\-]{16,}", re.IGNORECASE)
#: Control characters, and lone surrogates (text no store can encode).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_METHOD = re.compile(r"[A-Z0-9!#$%&'*+.^_`|~-]{1,16}")
_ADDRESS = re.compile(r"[A-Za-z0-9.:%\[\]-]{1,255}")
_MAX_CLEAN_ROUNDS = 8
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._~-]*")


def _optional_utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        msg = "timestamps must be timezone-aware datetimes (UTC)"
        raise InvalidConfigError(msg, field="timestamp")
    return ts.astimezone(timezone.utc)


def strip_query(path: str) -> str:
    """
    Return *path* without its query string or fragment.

    .. versionadded:: 0.1.0
    """
    for sep in ("?", "#"):
        path = path.split(sep, 1)[0]
    return path


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        msg = f"{name} must be a string, not {type(value).__name__}"
        raise InvalidConfigError(msg, field=name)
    return value


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _has_secret(text: str) -> bool:
    if _SECRET.search(text):
        return True
    return "%" in text and bool(
        _SECRET.search(urllib.parse.unquote(text, errors="replace"))
    )


def _clean_path_once(path: str) -> str:
    path = strip_query(path)
    while "://" in path[:16] or path.startswith("//"):
        # An absolute URL (or a scheme-relative one): drop the scheme and the
        # authority, which may hold "user:key@".
        rest = path.split("//", 1)[1]
        cut = rest.find("/")
        path = "/" if cut < 0 else rest[cut:]
    segments = [s.split(";", 1)[0] for s in path.split("/")]
    path = "/".join(REDACTED if _has_secret(s) else s for s in segments)
    return _cut(_CONTROL.sub("\ufffd", path), MAX_PATH_LENGTH)


def _clean_path(value: object) -> str:
    path = _text("path", value)
    if (
        _PLAIN_PATH.fullmatch(path)
        and not path.startswith("//")
        and len(path) <= MAX_PATH_LENGTH
        and not _SECRET.search(path)
    ):
        return path  # the common case: nothing to clean
    # Each step only shortens the path (or swaps a control character), so
    # repeating it reaches a fixed point: a clean path stays as it is.
    for _ in range(_MAX_CLEAN_ROUNDS):
        cleaned = _clean_path_once(path)
        if cleaned == path:
            break
        path = cleaned
    return path


def _clean_resource(value: object) -> str:
    text = _SECRET.sub(REDACTED, _text("resource", value))
    if _has_secret(text):
        text = REDACTED
    if _CONTROL.search(text):
        text = _CONTROL.sub("\ufffd", text)
    return _cut(text, MAX_RESOURCE_LENGTH)


def _clean_method(value: object) -> str:
    method = _text("method", value).upper()
    return method if not method or _METHOD.fullmatch(method) else INVALID


def _clean_address(value: object) -> str:
    address = _text("remote_addr", value)
    if not address or address in {REDACTED, INVALID}:
        return address
    if _has_secret(address):
        return REDACTED
    return address if _ADDRESS.fullmatch(address) else INVALID


#: Cleaned values are remembered for inputs up to this long ...
_MEMO_MAX_INPUT = 256
#: ... and at most this many per field (then the memo starts over).
_MEMO_SIZE = 1024


def _remember(
    memo: dict[str, str], clean: Callable[[object], str], value: object
) -> str:
    # Requests repeat the same paths, models, methods and addresses: clean
    # each once. Cleaning is pure, so a remembered result is always right.
    if type(value) is not str or len(value) > _MEMO_MAX_INPUT:
        return clean(value)
    found = memo.get(value)
    if found is None:
        found = clean(value)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[value] = found
    return found


_PATHS: dict[str, str] = {}
_RESOURCES: dict[str, str] = {}
_METHODS: dict[str, str] = {}
_ADDRESSES: dict[str, str] = {}


def _cleaned_path(value: object) -> str:
    return _remember(_PATHS, _clean_path, value)


def _cleaned_resource(value: object) -> str:
    return _remember(_RESOURCES, _clean_resource, value)


def _cleaned_method(value: object) -> str:
    return _remember(_METHODS, _clean_method, value)


def _cleaned_address(value: object) -> str:
    return _remember(_ADDRESSES, _clean_address, value)
