"""
How limiter keys become Redis keys: one hash tag per group, so that every
script touches one Redis Cluster slot.

A key's *group* is the text before its first NUL (``"acme\\x00req"`` is in
group ``acme``: a tenant's buckets and slots); keys without a NUL form one
group of their own. The Redis key is ``prefix{g<group>}<kind><key>``, the
group escaped so that it never holds ``}``; *kind* is ``b`` for a bucket and
``s`` for a slot lease set.
"""

from __future__ import annotations

from collections.abc import Sequence

from zerfoo_cloud.errors import InvalidConfigError

__all__ = ["BUCKET", "SLOTS", "KeySpace", "glob_escape"]

#: The kind byte of a bucket's key and of a slot lease set's key.
BUCKET = "b"
SLOTS = "s"
#: At most this many encoded keys are remembered (then the memo starts over).
_MAX_CACHED_KEYS = 4096


def group_of(key: str) -> str:
    """
    Return the group of *key*: the text before its first NUL, or ``""``.
    """
    cut = key.find("\x00")
    return "" if cut < 0 else key[:cut]


def glob_escape(raw: bytes) -> bytes:
    """
    Return *raw* with Redis's glob characters escaped, for ``SCAN MATCH``.
    """
    out = bytearray()
    for byte in raw:
        if byte in b"*?[]\\":
            out.append(0x5C)
        out.append(byte)
    return bytes(out)


class KeySpace:
    """
    The Redis keys under one prefix.

    *prefix* isolates users of one Redis (tests, deployments); it may not
    hold ``{`` or ``}``, which would move the hash tag.

    .. versionadded:: 0.1.0
    """

    def __init__(self, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            msg = f"a Redis key prefix may not hold '{{' or '}}': {prefix!r}"
            raise InvalidConfigError(msg, field="prefix")
        self.prefix = prefix
        self.raw_prefix = prefix.encode("utf-8", "surrogatepass")
        self._memo: dict[tuple[str, str], bytes] = {}

    def key(self, kind: str, key: str) -> bytes:
        """
        Return the Redis key of limiter key *key* of *kind*.
        """
        memo = self._memo
        raw = memo.get((kind, key))
        if raw is None:
            if len(memo) >= _MAX_CACHED_KEYS:
                memo.clear()
            tag = group_of(key).replace("%", "%25").replace("}", "%7D")
            text = f"{self.prefix}{{g{tag}}}{kind}{key}"
            raw = memo[kind, key] = text.encode("utf-8", "surrogatepass")
        return raw

    def one_group(self, keys: Sequence[str]) -> None:
        """
        Check that *keys* (those of one script) are all in one group.

        Raises:
            InvalidConfigError: they are not; on a Redis Cluster the script
                could not run.
        """
        if len(keys) > 1:
            first = group_of(keys[0])
            if any(group_of(key) != first for key in keys[1:]):
                msg = (
                    "the keys of one admit or settle must share a group (the text "
                    f"before their first NUL): {sorted({group_of(k) for k in keys})!r}"
                )
                raise InvalidConfigError(msg, field="keys")

    def scan_pattern(self, key_prefix: str) -> bytes:
        """
        Return a ``SCAN MATCH`` pattern that finds every bucket and lease
        set whose limiter key starts with *key_prefix* (and maybe more:
        check each with `limiter_key`).
        """
        raw = key_prefix.encode("utf-8", "surrogatepass")
        return glob_escape(self.raw_prefix) + b"{*}[bs]" + glob_escape(raw) + b"*"

    def limiter_key(self, redis_key: bytes) -> bytes | None:
        """
        Return the limiter key (UTF-8) of *redis_key*, or ``None`` if it is
        not a bucket or lease set under this prefix.
        """
        if not redis_key.startswith(self.raw_prefix + b"{"):
            return None
        close = redis_key.find(b"}", len(self.raw_prefix))
        if close < 0 or redis_key[close + 1 : close + 2] not in (b"b", b"s"):
            return None
        return redis_key[close + 2 :]
