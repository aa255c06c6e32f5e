"""
The LMDB replay cache.
"""

from __future__ import annotations

import hashlib
import struct
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.errors import CorruptRecordError

if TYPE_CHECKING:
    from zerfoo_cloud.stores.lmdb._env import Environment

__all__ = ["LMDBReplayCache"]

_TIME = struct.Struct(">d")
#: Expired entries removed by one `LMDBReplayCache.add`, at most; enough to
#: keep up with any arrival rate, small enough to keep each add fast.
PURGE_BATCH = 64
#: Keys longer than this (in UTF-8) are stored as their SHA-256; LMDB keys
#: are limited to 511 bytes, and the expiry index adds 8.
_MAX_RAW_KEY = 400


def _raw_key(key: str) -> bytes:
    # A one-byte tag keeps the empty key (which LMDB refuses) storable and
    # hashed keys apart from plain ones.
    raw = key.encode("utf-8", "surrogatepass")
    if len(raw) > _MAX_RAW_KEY:
        return b"h" + hashlib.sha256(raw).digest()
    return b"k" + raw


def _time(value: float) -> bytes:
    # Big-endian IEEE 754 bytes of a non-negative double sort like the number.
    return _TIME.pack(max(0.0, value))


class LMDBReplayCache:
    """
    A `zerfoo_cloud.stores.protocols.ReplayCache` in LMDB: a replay is caught
    in every process of the host that opens the same folder, and after a
    restart (commits are fsynced). Get it from
    `zerfoo_cloud.stores.lmdb.LMDBStores` (``stores.replay``).

    Entries live in the durable database ``replay`` (key to big-endian
    expiry); the index ``replay_expiry`` (expiry + key) lets every `add`
    purge up to `PURGE_BATCH` expired entries, oldest first, in the same
    transaction.

    .. versionadded:: 0.1.0
    """

    def __init__(self, env: Environment) -> None:
        self._env = env

    # Looked up per call: in a forked child the environment reopens with
    # handles of its own.
    @property
    def _db(self) -> Any:
        return self._env.handles()["replay"]

    @property
    def _index(self) -> Any:
        return self._env.handles()["replay_expiry"]

    def _decode(self, key: bytes, raw: bytes) -> float:
        if len(raw) != _TIME.size:
            raise CorruptRecordError(
                "lmdb:replay",
                key[1:].decode("utf-8", "backslashreplace"),
                f"{len(raw)} bytes instead of {_TIME.size}",
            )
        value: float = _TIME.unpack(raw)[0]
        return value

    def _purge(self, txn: Any, now: float) -> None:
        limit = _time(now)
        expired: list[bytes] = []
        with txn.cursor(db=self._index) as cursor:
            if cursor.first():
                for index_key in cursor.iternext(keys=True, values=False):
                    if index_key[: _TIME.size] > limit or len(expired) >= PURGE_BATCH:
                        break
                    expired.append(index_key)
        for index_key in expired:
            txn.delete(index_key, db=self._index)
            key = index_key[_TIME.size :]
            if txn.get(key, db=self._db) == index_key[: _TIME.size]:
                txn.delete(key, db=self._db)

    def add(self, key: str, expires_at: float, now: float) -> bool:
        """
        Record *key* until *expires_at*; ``False`` if it is already recorded.
        """
        raw = _raw_key(key)
        stamp = _time(expires_at)

        def write(txn: Any) -> bool:
            self._purge(txn, now)
            old = txn.get(raw, db=self._db)
            if old is not None:
                if self._decode(raw, old) > now:
                    return False
                txn.delete(old + raw, db=self._index)
            txn.put(raw, stamp, db=self._db)
            txn.put(stamp + raw, b"", db=self._index)
            return True

        return self._env.write(write)

    def __len__(self) -> int:
        """
        Return how many entries are held (expired ones not yet purged included).
        """
        return self._env.stat("replay")["entries"]

    def close(self) -> None:
        """
        Nothing to release: `LMDBStores.close` closes the environment.
        """
