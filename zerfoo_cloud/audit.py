"""
SOC 2 audit logging: a tamper-evident log of who did what.

`AuditLogger` stores one `AuditEntry` per auditable event in an
`AuditStore`. Entries never hold API keys, request or response bodies, or
query strings: an entry has no field for headers or bodies, and its
converters clean what it does hold (see `AuditEntry`).

**Hash chain.** In a store that keeps a chain (memory and LMDB do: the
`zerfoo_cloud.stores.protocols.ChainedAuditStore` capability) every entry
carries a sequence number *seq*, the hash of the entry before it
(*prev_hash*) and its own *hash*: SHA-256 over its content and *prev_hash*,
or HMAC-SHA256 keyed with the logger's *secret* when one is set. The store
links entries inside its write transaction, so several processes appending
at once still form one chain. `AuditLogger.verify` walks the log and reports
the first entry that was altered, removed, inserted or moved;
`AuditLogger.purge` drops old entries and keeps an *anchor* (the last
dropped entry's seq and hash), so the rest stays verifiable.

Without a secret the chain catches accidental damage and naive edits, but
whoever can write the store can rebuild every hash: set a secret (kept
outside the store) for evidence that holds against them.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import attrs

from zerfoo_cloud._clock import wire_stamp
from zerfoo_cloud._field_limits import MAX_TENANT_ID_BYTES
from zerfoo_cloud._redacted import REDACTED
from zerfoo_cloud._writer import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_PENDING,
    DEFAULT_RETRY_INTERVAL,
    BatchWriter,
    QueuedWriting,
    choose_linger,
    in_background,
)
from zerfoo_cloud.errors import (
    AuditChainError,
    InvalidConfigError,
)
from zerfoo_cloud.stores.protocols import ChainedAuditStore

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.stores.protocols import AuditStore

__all__ = [
    "GENESIS",
    "INVALID",
    "MAX_PATH_LENGTH",
    "MAX_RESOURCE_LENGTH",
    "MAX_TENANT_ID_BYTES",
    "MIN_SECRET_BYTES",
    "REDACTED",
    "AuditAction",
    "AuditEntry",
    "AuditLogger",
    "AuditProblem",
    "AuditResult",
    "AuditVerification",
    "ChainLink",
    "entry_hash",
    "entry_json",
    "link_entry",
    "make_entry",
    "strip_query",
    "verify_chain",
]

_log = logging.getLogger("zerfoo_cloud.audit")

#: What replaces a method or address that is not one.
INVALID = "<invalid>"
#: Paths longer than this are cut to this length (the last character "…").
MAX_PATH_LENGTH = 1024
#: Resources longer than this are cut to this length (the last character "…").
MAX_RESOURCE_LENGTH = 256
#: A chain secret has at least this many bytes.
MIN_SECRET_BYTES = 16

# API keys of this library ("zc-") and of OpenAI-style services ("sk-"):
# the prefix, not glued to a word before it, and 16 or more key characters.
_SECRET = re.compile(r"(?<![A-Za-z0-9])(?:zc|sk)-[A-Za-z0-9_\-]{16,}", re.IGNORECASE)
#: Control characters, and lone surrogates (text no store can encode).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_METHOD = re.compile(r"[A-Z0-9!#$%&'*+.^_`|~-]{1,16}")
_ADDRESS = re.compile(r"[A-Za-z0-9.:%\[\]-]{1,255}")
_MAX_CLEAN_ROUNDS = 8
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._~-]*")


class AuditAction(str, enum.Enum):
    """
    The kind of operation audited.

    .. versionadded:: 0.1.0
    """

    INFERENCE = "inference"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    LIST = "list"
    AUTH = "auth"


class AuditResult(str, enum.Enum):
    """
    The outcome of an audited operation.

    .. versionadded:: 0.1.0
    """

    SUCCESS = "success"
    DENIED = "denied"
    RATE_LIMITED = "rate_limited"
    ERROR = "error"
    UNAUTHORIZED = "unauthorized"
    #: The request was served, but the usage the app reported was more than
    #: a billing record holds; it was billed the most a record holds.
    USAGE_CLAMPED = "usage_clamped"


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


#: The largest status code an entry holds.
_MAX_STATUS = 999


def _check_status(instance: object, attribute: object, value: int) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= _MAX_STATUS
    ):
        msg = f"status_code must be an integer from 0 to 999, not {value!r}"
        raise InvalidConfigError(msg, field="status_code")


def _check_seq(instance: object, attribute: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"seq must be a non-negative integer, not {value!r}"
        raise InvalidConfigError(msg, field="seq")


def _str_field(instance: object, attribute: Any, value: object) -> None:
    _text(attribute.name, value)


@attrs.frozen
class AuditEntry:
    """
    One audited event. Holds no keys, bodies or query strings.

    *timestamp* ``None`` means "now": `AuditLogger.log` stamps it.

    The fields are cleaned when the entry is made, so no caller can put a
    secret in by mistake: *path* loses its query string, fragment, ``;``
    parameters and any scheme and authority (``https://user:key@host``);
    a path segment, *resource* or *remote_addr* that holds something shaped
    like an API key (``zc-…``, ``sk-…``, also percent-encoded) becomes
    `REDACTED`; a *method* or *remote_addr* that is not one becomes
    `INVALID`; control characters become U+FFFD and over-long paths and
    resources are cut. Cleaning a clean entry changes nothing.

    *seq*, *prev_hash* and *hash* are the entry's place in the hash chain
    (see the module docstring). They are set by the store; on an entry made
    by the caller (or kept by a store without a chain) they are ``0``,
    ``""`` and ``""``, and `AuditLogger.log` ignores what the caller set.

    Raises:
        InvalidConfigError: a field has the wrong type, *status_code* is
            not 0 to 999, or *timestamp* is naive.

    .. versionadded:: 0.1.0
    """

    timestamp: datetime | None = attrs.field(default=None, converter=_optional_utc)
    tenant_id: str = attrs.field(default="", validator=_str_field)
    action: AuditAction = attrs.field(
        default=AuditAction.INFERENCE, converter=AuditAction
    )
    result: AuditResult = attrs.field(
        default=AuditResult.SUCCESS, converter=AuditResult
    )
    resource: str = attrs.field(default="", converter=_cleaned_resource)
    status_code: int = attrs.field(default=0, validator=_check_status)
    method: str = attrs.field(default="", converter=_cleaned_method)
    path: str = attrs.field(default="", converter=_cleaned_path)
    remote_addr: str = attrs.field(default="", converter=_cleaned_address)
    seq: int = attrs.field(default=0, kw_only=True, validator=_check_seq)
    prev_hash: str = attrs.field(default="", kw_only=True, validator=_str_field)
    hash: str = attrs.field(default="", kw_only=True, validator=_str_field)

    def to_dict(self) -> dict[str, Any]:
        """
        Return the entry as JSON-ready data: the form stored, hashed and exported.
        """
        ts = self.timestamp
        return {
            "timestamp": None if ts is None else ts.isoformat(timespec="microseconds"),
            "tenant_id": self.tenant_id,
            "action": self.action.value,
            "result": self.result.value,
            "resource": self.resource,
            "status_code": self.status_code,
            "method": self.method,
            "path": self.path,
            "remote_addr": self.remote_addr,
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, data: object) -> AuditEntry:
        """
        Rebuild an entry from `to_dict`'s form.

        Raises:
            ValueError: *data* is not such a form; the message says why.
        """
        if not isinstance(data, dict) or set(data) != _FIELDS:
            msg = "not an audit entry (wrong fields)"
            raise ValueError(msg)
        ts = data["timestamp"]
        try:
            stamp = None if ts is None else datetime.fromisoformat(ts)
            return cls(
                stamp,
                data["tenant_id"],
                data["action"],
                data["result"],
                data["resource"],
                data["status_code"],
                data["method"],
                data["path"],
                data["remote_addr"],
                seq=data["seq"],
                prev_hash=data["prev_hash"],
                hash=data["hash"],
            )
        except (TypeError, ValueError) as exc:
            msg = f"not an audit entry ({exc})"
            raise ValueError(msg) from exc

    def unchained(self) -> AuditEntry:
        """
        Return the entry without its chain fields (as the caller logged it).
        """
        return attrs.evolve(self, seq=0, prev_hash="", hash="")


_FIELDS = frozenset(AuditEntry().to_dict())
_ENTRY_FIELDS = tuple(
    f.name
    for f in attrs.fields(AuditEntry)
    if f.name not in {"seq", "prev_hash", "hash"}
)


_setattr = object.__setattr__

#: The members by value: ``AuditAction(value)`` costs a microsecond, and the
#: writer process makes every entry from the values.
_ACTIONS = {a.value: a for a in AuditAction}
_RESULTS = {r.value: r for r in AuditResult}


def _as_action(value: str) -> AuditAction:
    found = _ACTIONS.get(value) if type(value) is str else None
    return AuditAction(value) if found is None else found


def _as_result(value: str) -> AuditResult:
    found = _RESULTS.get(value) if type(value) is str else None
    return AuditResult(value) if found is None else found


def _with_chain(
    entry: AuditEntry,
    seq: int,
    prev_hash: str,
    digest: str,
    timestamp: datetime | None = None,
) -> AuditEntry:
    # A copy with new chain fields (and a timestamp, if given). The other
    # fields are clean already, so the converters are skipped: this runs
    # once per stored entry.
    copy: AuditEntry = object.__new__(AuditEntry)
    for name in _ENTRY_FIELDS:
        _setattr(copy, name, getattr(entry, name))
    if timestamp is not None:
        _setattr(copy, "timestamp", timestamp)
    _setattr(copy, "seq", seq)
    _setattr(copy, "prev_hash", prev_hash)
    _setattr(copy, "hash", digest)
    return copy


def make_entry(  # noqa: PLR0917 - the fields of an entry, in order
    timestamp: datetime | None,
    tenant_id: str,
    action: AuditAction | str,
    result: AuditResult | str,
    resource: str,
    status_code: int,
    method: str,
    path: str,
    remote_addr: str,
) -> AuditEntry:
    """
    Return ``AuditEntry(timestamp, tenant_id, action, result, resource,
    status_code, method, path, remote_addr)``, cleaned and checked the same
    way, in a fraction of the time for the usual fields (an aware UTC
    timestamp, text, a status code from 0 to 999): the converters and
    validators are not called one by one, and the cleaning of repeated
    values is remembered. Anything else goes through the constructor.

    Raises:
        InvalidConfigError: as `AuditEntry`.
        ValueError: *action* or *result* is not one of its values.

    .. versionadded:: 0.1.0
    """
    if (
        type(timestamp) is not datetime
        or timestamp.tzinfo is not timezone.utc
        or type(tenant_id) is not str
        or type(status_code) is not int
        or not 0 <= status_code <= _MAX_STATUS
    ):
        return AuditEntry(
            timestamp,
            tenant_id,
            action,
            result,
            resource,
            status_code,
            method,
            path,
            remote_addr,
        )
    entry: AuditEntry = object.__new__(AuditEntry)
    _setattr(entry, "timestamp", timestamp)
    _setattr(entry, "tenant_id", tenant_id)
    _setattr(
        entry,
        "action",
        action if type(action) is AuditAction else _as_action(action),
    )
    _setattr(
        entry,
        "result",
        result if type(result) is AuditResult else _as_result(result),
    )
    _setattr(entry, "resource", _cleaned_resource(resource))
    _setattr(entry, "status_code", status_code)
    _setattr(entry, "method", _cleaned_method(method))
    _setattr(entry, "path", _cleaned_path(path))
    _setattr(entry, "remote_addr", _cleaned_address(remote_addr))
    _setattr(entry, "seq", 0)
    _setattr(entry, "prev_hash", "")
    _setattr(entry, "hash", "")
    return entry


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


class AuditProblem(str, enum.Enum):
    """
    How the hash chain was found broken.

    .. versionadded:: 0.1.0
    """

    #: The entry's content does not match its hash, or cannot be decoded.
    ALTERED = "altered"
    #: Entries are missing (from the middle, or from the end before the head).
    REMOVED = "removed"
    #: The entry does not follow its predecessor, or lies past the head.
    INSERTED = "inserted"
    #: The entry is not where its sequence number says it belongs.
    REORDERED = "reordered"


@attrs.frozen
class AuditVerification:
    """
    What `AuditLogger.verify` found.

    Attributes:
        ok: the whole log is one valid chain from *anchor* to *head*.
        checked: how many entries were found intact before the first problem.
        anchor: where the log starts (the last purged entry, or `GENESIS`).
        head: where the store says the log ends.
        seq: the position where the chain first breaks (``None`` if ok).
        problem: how it breaks (``None`` if ok).
        message: what was found, for people.

    .. versionadded:: 0.1.0
    """

    ok: bool
    checked: int
    anchor: ChainLink
    head: ChainLink
    seq: int | None = None
    problem: AuditProblem | None = None
    message: str = "the audit log is intact"

    def check(self) -> None:
        """
        Raise `AuditChainError` if the chain is broken.
        """
        if not self.ok:
            assert self.seq is not None
            assert self.problem is not None
            raise AuditChainError(
                self.message, seq=self.seq, problem=self.problem.value
            )


_Break = tuple[int, AuditProblem, str]


def _check_entry(  # noqa: PLR0911 - one return per kind of break
    position: int, entry: AuditEntry | None, expected: int, prev: str, key: bytes | None
) -> _Break | None:
    if position > expected:
        return expected, AuditProblem.REMOVED, "is missing: it was removed or moved"
    if position < expected:
        return (
            expected,
            AuditProblem.REORDERED,
            f"is followed by another entry {position}: entries were copied or moved",
        )
    if entry is None:
        return position, AuditProblem.ALTERED, "cannot be decoded: it was altered"
    if entry.seq != position:
        return (
            position,
            AuditProblem.REORDERED,
            f"holds entry {entry.seq}: entries were moved",
        )
    if entry.prev_hash != prev:
        return (
            position,
            AuditProblem.INSERTED,
            "does not follow the entry before it: an entry was inserted or replaced",
        )
    if entry_hash(entry, key) != entry.hash:
        return position, AuditProblem.ALTERED, "does not match its hash: it was altered"
    return None


def _check_end(last: ChainLink, head: ChainLink) -> _Break | None:
    if last.seq < head.seq:
        return (
            last.seq + 1,
            AuditProblem.REMOVED,
            f"to {head.seq} (the head) are missing: they were removed",
        )
    if last.seq > head.seq:
        return (
            head.seq + 1,
            AuditProblem.INSERTED,
            "lies past the head: it was inserted",
        )
    if last.hash != head.hash:
        return (
            last.seq,
            AuditProblem.ALTERED,
            "does not match the head's hash: it was altered",
        )
    return None


def verify_chain(
    anchor: ChainLink,
    head: ChainLink,
    entries: Iterable[tuple[int, AuditEntry | None]],
    key: bytes | None = None,
) -> AuditVerification:
    """
    Check that *entries* form one chain from *anchor* to *head*.

    *entries* yields ``(position, entry)`` in position order, the entry
    ``None`` where a stored record cannot be decoded. Stores hand their
    entries to this through `ChainedAuditStore.walk`.

    Returns:
        The verdict, naming the first position where the chain breaks.

    .. versionadded:: 0.1.0
    """
    expected = anchor.seq + 1
    prev = anchor.hash
    found: _Break | None = None
    for position, entry in entries:
        found = _check_entry(position, entry, expected, prev, key)
        if found is not None:
            break
        assert entry is not None
        prev = entry.hash
        expected += 1
    else:
        found = _check_end(ChainLink(expected - 1, prev), head)
    if found is None:
        return AuditVerification(
            ok=True, checked=expected - 1 - anchor.seq, anchor=anchor, head=head
        )
    seq, problem, what = found
    return AuditVerification(
        ok=False,
        checked=expected - 1 - anchor.seq,
        anchor=anchor,
        head=head,
        seq=seq,
        problem=problem,
        message=f"audit entry {seq} {what}",
    )


def _secret_key(secret: str | bytes | None) -> bytes | None:
    if secret is None:
        return None
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        msg = f"the audit chain secret must have at least {MIN_SECRET_BYTES} bytes"
        raise InvalidConfigError(msg, field="secret")
    return key


class AuditLogger(QueuedWriting):
    """
    Records audit entries in an `AuditStore`, queries, verifies and purges them.

    **Guarantees.** `log` never waits for a disk: with a store that is not in
    memory it checks and stamps the entry and queues it; a background thread
    appends the queue in batches (with LMDB, one fsynced transaction per
    batch, the hash chain extended inside it). `flush` (or ``await
    aflush()``) returns once every entry logged before it is durable; `close`
    flushes. A failing store loses nothing: entries stay queued and are
    retried, and `flush` raises `StoreError` until they are written. With an
    in-memory store (``in_memory`` true) entries are stored at once.

    With a store that keeps a chain (`ChainedAuditStore`: memory and LMDB)
    every entry is chained to the one before (HMAC-SHA256 keyed with
    *secret* when given, else SHA-256), `verify` checks the chain and `purge`
    drops old entries. Other stores keep entries unchained.

    Args:
        store: where entries go.
        secret: the chain key, at least `MIN_SECRET_BYTES` bytes; keep it
            outside the store. It is never logged or shown in a repr.
        clock: the time source, Unix seconds.
        background: queue entries for a writer thread (``True``) or store
            them in the caller's thread (``False``); ``None`` picks by store.
        max_batch: at most this many entries per transaction.
        max_pending: at most this many entries queued; past it `log` raises.
        retry_interval: seconds between retries after a store failure.
        offload: append each batch from a writer process (LMDB stores
            only), as `zerfoo_cloud.metering.TokenMeter`'s *offload* does:
            one process and about 0.2 s at the first append buy the serving
            threads tens of microseconds per request under load. The
            process gets the secret over a pipe, never on its command line
            or in its environment; a batch sent again after the process
            died is recognised by the store, so no entry is stored twice;
            `query`, `verify` and `purge` still run in this process.
        linger: seconds the writer thread lets entries gather before it
            appends a batch, as `zerfoo_cloud.metering.TokenMeter`'s
            *linger*: by default 0.005, or 0.05 with *offload*.

    Raises:
        InvalidConfigError: a bad option (a short secret); ``offload=True``
            with a store that is not
            `zerfoo_cloud.stores.lmdb.LMDBAuditStore`.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        secret: str | bytes | None = None,
        clock: Clock = time.time,
        background: bool | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        offload: bool = False,
        linger: float | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self._key = _secret_key(secret)
        self._linker = _Linker(self._key)
        self._chained = store if isinstance(store, ChainedAuditStore) else None
        self._offload = None
        if offload:
            # Imported here: the module is also the writer process's main.
            from zerfoo_cloud._offload import AuditCommit

            self._offload = AuditCommit(store, self._key)
        self._writer: BatchWriter[AuditEntry] = BatchWriter(
            self._offload
            or (
                self._append_chained if self._chained is not None else self._append_each
            ),
            name="audit logger",
            noun="audit entries",
            background=in_background(store, background),
            max_batch=max_batch,
            max_pending=max_pending,
            retry_interval=retry_interval,
            linger=choose_linger(linger, offload=offload),
            logger=_log,
        )
        self._writers = (self._writer,)

    def __repr__(self) -> str:
        keyed = "keyed" if self._key is not None else "unkeyed"
        return f"<AuditLogger {type(self.store).__name__} {keyed}>"

    def _append_chained(self, batch: list[AuditEntry]) -> None:
        assert self._chained is not None
        self._chained.append_linked(batch, self._linker)

    def _append_each(self, batch: list[AuditEntry]) -> None:
        # A plain store appends one at a time: drop each from the batch as
        # it is stored, so a failure retries only the rest.
        while batch:
            self.store.append(batch[0])
            del batch[0]

    def log(self, entry: AuditEntry) -> AuditEntry:
        """
        Queue *entry* (stamped with the clock if it has no timestamp).

        Returns:
            The entry as it will be stored, without its chain fields (the
            store sets them; `query` returns them).

        Raises:
            InvalidConfigError: *entry* is not an `AuditEntry`, or its
                tenant id is longer than `MAX_TENANT_ID_BYTES`.
            StoreError: nothing was logged: the logger is closed, or
                *max_pending* entries already wait for a failing store.
        """
        if not isinstance(entry, AuditEntry):
            msg = f"log() takes an AuditEntry, not {type(entry).__name__}"
            raise InvalidConfigError(msg, field="entry")
        tenant_id = entry.tenant_id
        if (
            len(tenant_id) * 4 > MAX_TENANT_ID_BYTES
            and len(tenant_id.encode("utf-8", "surrogatepass")) > MAX_TENANT_ID_BYTES
        ):
            msg = f"tenant_id is longer than {MAX_TENANT_ID_BYTES} bytes of UTF-8"
            raise InvalidConfigError(msg, field="tenant_id")
        if entry.timestamp is None or entry.seq or entry.prev_hash or entry.hash:
            stamp = entry.timestamp or datetime.fromtimestamp(
                self.clock(), timezone.utc
            )
            entry = _with_chain(entry, 0, "", "", stamp)
        self._writer.submit(entry)
        return entry

    def log_request(
        self,
        tenant_id: str,
        action: AuditAction,
        result: AuditResult,
        *,
        resource: str,
        status_code: int,
        method: str,
        path: str,
        remote_addr: str,
    ) -> None:
        """
        Queue the entry of one HTTP request, stamped with the clock now.

        The same as ``log(AuditEntry(None, tenant_id, action, result,
        resource, status_code, method, path, remote_addr))`` (the keyword
        arguments are those fields), cleaning included, in a fraction of
        the time: the entry is made once, with `make_entry`; with
        ``offload=True`` the fields are checked here and the entry made in
        the writer process. The HTTP layer calls it once per request.

        Raises:
            InvalidConfigError: a field has the wrong type or range, or the
                tenant id is longer than `MAX_TENANT_ID_BYTES`.
            ValueError: *action* or *result* is not one of its values.
            StoreError: as `log`.
        """
        now = self.clock()
        if (
            self._offload is not None
            and type(action) is AuditAction
            and type(result) is AuditResult
            and type(tenant_id) is str
            and len(tenant_id) * 4 <= MAX_TENANT_ID_BYTES
            and type(status_code) is int
            and 0 <= status_code <= _MAX_STATUS
            and type(resource) is str
            and type(method) is str
            and type(path) is str
            and type(remote_addr) is str
        ):
            # Fields that make a valid entry: `make_entry` runs in the
            # writer process (the fields in AuditEntry's order).
            self._writer.submit(
                (  # type: ignore[arg-type] # the writer process takes fields too
                    wire_stamp(now),
                    tenant_id,
                    action._value_,
                    result._value_,
                    resource,
                    status_code,
                    method,
                    path,
                    remote_addr,
                )
            )
            return
        entry = make_entry(
            datetime.fromtimestamp(now, timezone.utc),
            tenant_id,
            action,
            result,
            resource,
            status_code,
            method,
            path,
            remote_addr,
        )
        if len(tenant_id) * 4 > MAX_TENANT_ID_BYTES:
            self.log(entry)  # checks the length in bytes
            return
        self._writer.submit(entry)

    def _chain_store(self, what: str) -> ChainedAuditStore:
        if self._chained is None:
            msg = (
                f"{type(self.store).__name__} keeps no hash chain, so it cannot "
                f"{what}; use a memory or LMDB audit store"
            )
            raise InvalidConfigError(msg, field="store")
        return self._chained

    def query(self, tenant_id: str, start: datetime, end: datetime) -> list[AuditEntry]:
        """
        Return the tenant's entries with ``start <= timestamp <= end``, oldest first.

        First waits until this logger's queued entries are written.

        Raises:
            InvalidConfigError: *start* or *end* is not an aware datetime.
        """
        start, end = _aware(start), _aware(end)
        self._settle()
        return self.store.query(tenant_id, start, end)

    def verify(self) -> AuditVerification:
        """
        Walk the whole log and check its hash chain.

        Returns:
            An `AuditVerification`: ``ok``, or the first position where an
            entry was altered, removed, inserted or moved (call its
            ``check()`` to raise `AuditChainError` instead). Entries logged
            with another secret (or none) show as altered.

        Raises:
            InvalidConfigError: the store keeps no chain.
            StoreError: the store cannot be read.
        """
        store = self._chain_store("be verified")
        self._settle()
        key = self._key

        def visit(
            anchor: ChainLink,
            head: ChainLink,
            entries: Iterator[tuple[int, AuditEntry | None]],
        ) -> AuditVerification:
            return verify_chain(anchor, head, entries, key)

        return store.walk(visit)

    def purge(self, before: datetime) -> int:
        """
        Drop the oldest entries, in chain order, while they are older than *before*.

        Stops at the first entry at or after *before*, so what is left is an
        unbroken tail of the chain; its anchor (the last entry dropped) keeps
        it verifiable.

        Returns:
            How many entries were dropped.

        Raises:
            InvalidConfigError: *before* is not an aware datetime, or the
                store keeps no chain.
            StoreError: the store failed.
        """
        before = _aware(before)
        store = self._chain_store("purge")
        self._settle()
        return store.purge(before)


def _aware(ts: datetime) -> datetime:
    stamp = _optional_utc(ts)
    if stamp is None:
        msg = "a datetime is required"
        raise InvalidConfigError(msg, field="timestamp")
    return stamp
