"""
The hash chain: `ChainLink`, the canonical JSON form of an entry, its hash,
and the linking of an entry after the one before it.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import attrs

from zerfoo_cloud.audit_records.entry import AuditEntry, _with_chain

__all__ = ["GENESIS", "ChainLink", "entry_hash", "entry_json", "link_entry"]


@attrs.frozen
class ChainLink:
    """
    A point of the hash chain: an entry's *seq* and *hash*.

    A store's *head* is its last entry; its *anchor* the last entry purged
    (`GENESIS` if none). Copy the head elsewhere now and then: an entry
    removed from the end of the log can only be noticed against it.

    .. versionadded:: 0.1.0
    """

    seq: int
    hash: str


#: The chain's start: the link before entry 1.
GENESIS = ChainLink(0, "0" * 64)


#: JSON string literals as ``json.dumps(..., ensure_ascii=False)`` writes them.
_quote = json.encoder.encode_basestring


def _json_parts(entry: AuditEntry, seq: int, prev_hash: str) -> tuple[str, str]:
    """
    The canonical JSON form of *entry* (keys sorted, no spaces, UTF-8 text
    kept) with chain fields *seq* and *prev_hash*, split where ``"hash"``
    belongs: ``head + tail`` is the hashed form (every field but the hash),
    ``head + '"hash":"…",' + tail`` the stored one. Written out by hand, as
    ``json.dumps(to_dict(), sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` would: it runs once per entry.
    """
    ts = entry.timestamp
    stamp = "null" if ts is None else f'"{ts.isoformat(timespec="microseconds")}"'
    # The enums are str subclasses holding their values.
    head = f'{{"action":{_quote(entry.action)},'
    tail = (
        f'"method":{_quote(entry.method)},"path":{_quote(entry.path)},'
        f'"prev_hash":{_quote(prev_hash)},"remote_addr":{_quote(entry.remote_addr)},'
        f'"resource":{_quote(entry.resource)},"result":{_quote(entry.result)},'
        f'"seq":{seq},"status_code":{entry.status_code},'
        f'"tenant_id":{_quote(entry.tenant_id)},"timestamp":{stamp}}}'
    )
    return head, tail


def _digest(payload: str, key: bytes | None) -> str:
    data = payload.encode()
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def entry_json(entry: AuditEntry) -> bytes:
    """
    Return *entry* as compact JSON with sorted keys: the form stores keep
    (`AuditEntry.from_dict` of its parsed form gives the entry back).

    .. versionadded:: 0.1.0
    """
    head, tail = _json_parts(entry, entry.seq, entry.prev_hash)
    return f'{head}"hash":{_quote(entry.hash)},{tail}'.encode()


def entry_hash(entry: AuditEntry, key: bytes | None = None) -> str:
    """
    Return the hash *entry* should carry: SHA-256 (HMAC-SHA256 with *key*) of
    its canonical JSON form (keys sorted, no spaces, UTF-8), every field but
    *hash* included.

    .. versionadded:: 0.1.0
    """
    head, tail = _json_parts(entry, entry.seq, entry.prev_hash)
    return _digest(head + tail, key)


def link_entry(
    prev: ChainLink, entry: AuditEntry, key: bytes | None = None
) -> AuditEntry:
    """
    Return *entry* chained after *prev*: its seq, prev_hash and hash set.

    Stores call this (or the logger's keyed variant) inside their write
    transaction with their current head.

    .. versionadded:: 0.1.0
    """
    seq = prev.seq + 1
    head, tail = _json_parts(entry, seq, prev.hash)
    return _with_chain(entry, seq, prev.hash, _digest(head + tail, key))


class _Linker:
    """
    `link_entry` with a fixed key, as a store's *link* callable. Stores that
    write JSON may call `link_json` instead, to get the stored form made
    from the same pieces as the hash.
    """

    __slots__ = ("key",)

    def __init__(self, key: bytes | None) -> None:
        self.key = key

    def __call__(self, prev: ChainLink, entry: AuditEntry) -> AuditEntry:
        return link_entry(prev, entry, self.key)

    def link_json(self, prev: ChainLink, entry: AuditEntry) -> tuple[AuditEntry, bytes]:
        """
        Return ``(linked, entry_json(linked))`` for `link_entry`'s *linked*.
        """
        seq = prev.seq + 1
        head, tail = _json_parts(entry, seq, prev.hash)
        digest = _digest(head + tail, self.key)
        stored = f'{head}"hash":"{digest}",{tail}'.encode()
        return _with_chain(entry, seq, prev.hash, digest), stored
