"""
Key layout shared by the LMDB billing and audit stores.

Records of one tenant sort together and by time: a key starts with the
tenant id's UTF-8 length (two bytes, big-endian) and bytes, then the time in
microseconds since 1970 (eight bytes, big-endian, offset by 2**63 so that
earlier times sort first). A time-range query of one tenant is then one
cursor scan over a contiguous key range.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from zerfoo_cloud._field_limits import MAX_TENANT_ID_BYTES
from zerfoo_cloud.errors import InvalidConfigError

__all__ = [
    "TIME",
    "key_time",
    "micros",
    "scan",
    "split_key",
    "stamp",
    "tenant_prefix",
    "time_key",
]

#: Eight-byte big-endian unsigned integers: times and sequence numbers.
TIME = struct.Struct(">Q")
_LENGTH = struct.Struct(">H")
_OFFSET = 1 << 63
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)


def micros(ts: datetime) -> int:
    """
    Return *ts* (aware) as whole microseconds since 1970-01-01 UTC, exactly.
    """
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        msg = "timestamps must be timezone-aware datetimes (UTC)"
        raise InvalidConfigError(msg, field="timestamp")
    return (ts - _EPOCH) // _ONE_US


def stamp(us: int) -> datetime:
    """
    Return the UTC datetime *us* microseconds after 1970-01-01.
    """
    return _EPOCH + timedelta(microseconds=us)


def tenant_prefix(tenant_id: str) -> bytes | None:
    """
    Return the key prefix of *tenant_id*, or ``None`` if it is too long to be stored.
    """
    raw = tenant_id.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_TENANT_ID_BYTES:
        return None
    return _LENGTH.pack(len(raw)) + raw


def time_key(prefix: bytes, us: int) -> bytes:
    """
    Return *prefix* followed by the sortable form of time *us*.
    """
    return prefix + TIME.pack(us + _OFFSET)


def key_time(key: bytes, at: int) -> int:
    """
    Return the time stored at offset *at* of *key* (the length of its prefix).
    """
    return int(TIME.unpack_from(key, at)[0]) - _OFFSET


def split_key(key: bytes) -> tuple[str, int, bytes]:
    """
    Split a key into tenant id, time and the bytes after them.

    Raises:
        ValueError: the key is not of this layout.
    """
    try:
        (size,) = _LENGTH.unpack_from(key)
        tenant = key[2 : 2 + size].decode()
        (raw_time,) = TIME.unpack_from(key, 2 + size)
    except (struct.error, UnicodeDecodeError) as exc:
        msg = f"malformed key ({exc})"
        raise ValueError(msg) from exc
    return tenant, raw_time - _OFFSET, key[10 + size :]


def scan(
    txn: Any, db: Any, prefix: bytes, start_us: int, end_us: int
) -> Iterator[tuple[bytes, bytes]]:
    """
    Yield the ``(key, value)`` pairs of *prefix* with a time in ``[start_us, end_us]``.
    """
    if end_us < start_us:
        return
    high = time_key(prefix, end_us)
    size = len(high)
    with txn.cursor(db=db) as cursor:
        if not cursor.set_range(time_key(prefix, start_us)):
            return
        for key, value in cursor.iternext():
            if key[:size] > high:
                return
            yield key, value
