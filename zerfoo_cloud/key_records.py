"""
Key records: one API key of a tenant, as a `TenantRecord` keeps it.

A tenant has any number of keys. Each `KeyRecord` holds the key's SHA-256
hash (never the key), a public id, a name, the visible prefix of the key
(its first characters, enough to recognise it, never enough to use it), its
creation time, and optionally an expiry, a revocation time and a model
scope narrower than the tenant's allow list, and limits of its own
(`KEY_LIMITS`: requests and tokens per minute, requests in flight) within
the tenant's.

A key works at a time *now* when it is neither revoked nor expired
(`KeyRecord.usable`): a key expires at its ``expires_at`` exactly (a key
with ``expires_at == now`` no longer works). Key records sit below the
tenant records, which import them.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import attrs

from zerfoo_cloud.budget_records import SpendBudget, budgets_from_list

__all__ = [
    "KEY_LIMITS",
    "MAX_KEYS_PER_TENANT",
    "MAX_KEY_NAME_LENGTH",
    "MIN_HIDDEN_LENGTH",
    "VISIBLE_PREFIX_LENGTH",
    "KeyRecord",
    "key_from_dict",
    "new_key_id",
    "typed_field",
    "visible_prefix",
]

#: The longest key name, in characters.
MAX_KEY_NAME_LENGTH = 100
#: The most keys (live, expiring or revoked) one tenant keeps.
MAX_KEYS_PER_TENANT = 100
#: How many characters of a key `visible_prefix` shows after ``zc-``.
VISIBLE_PREFIX_LENGTH = 4
#: How many characters of a key `visible_prefix` always leaves hidden.
MIN_HIDDEN_LENGTH = 16

#: The limits a key may have of its own, as `KeyRecord` and
#: `zerfoo_cloud.TenantRecord` name them: requests per minute, tokens per
#: minute and requests in flight (0: none of its own).
KEY_LIMITS = ("rate_limit", "token_budget", "max_concurrent_requests")

#: The largest limit a stored key may hold: `zerfoo_cloud.limits.MAX_LIMIT`
#: (integers up to it are exact in a double), written out because key
#: records import nothing of the package.
_LARGEST_LIMIT = 1 << 53

_KEY_ID = re.compile(r"k-[0-9a-f]{16}|[0-9a-f]{8}")
_HASH = re.compile(r"[0-9a-f]{64}")


def new_key_id() -> str:
    """
    Return a new, unguessable key id: ``k-`` and 16 hex digits.
    """
    return "k-" + secrets.token_hex(8)


def visible_prefix(api_key: str) -> str:
    """
    Return the part of *api_key* that may be shown: up to its first dash
    and `VISIBLE_PREFIX_LENGTH` characters more (``zc-AbC1``); a key
    without a dash shows `VISIBLE_PREFIX_LENGTH` characters. At least
    `MIN_HIDDEN_LENGTH` characters always stay hidden, so a short key (one
    an operator chose) shows less, or nothing. The rest of a generated key
    holds 256 random bits less these 24.
    """
    head, dash, _ = api_key.partition("-")
    if dash and len(head) <= 8:  # noqa: PLR2004 - a short scheme prefix
        shown = head + dash + api_key[len(head) + 1 :][:VISIBLE_PREFIX_LENGTH]
    else:
        shown = api_key[:VISIBLE_PREFIX_LENGTH]
    shown = shown[: max(0, len(api_key) - MIN_HIDDEN_LENGTH)]
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in shown)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _budgets(values: Iterable[SpendBudget]) -> tuple[SpendBudget, ...]:
    return tuple(values)


@attrs.frozen
class KeyRecord:
    """
    One API key of a tenant: its hash and what may be shown of it.

    Attributes:
        id: the key's public id (``k-`` and 16 hex digits; a tenant's key
            from before tenants had several is named by the first 8 hex
            digits of its hash).
        key_hash: the hex SHA-256 hash of the key (`hash_api_key`).
        name: a label chosen by the operator.
        prefix: the first characters of the key (`visible_prefix`).
        created_at: Unix seconds.
        expires_at: Unix seconds from which the key no longer works, or
            ``None`` (it never expires).
        revoked_at: Unix seconds when it was revoked, or ``None``.
        model_scope: the models the key may use (within the tenant's allow
            list); empty means every model the tenant may use.
        rate_limit: requests per minute the key may make, within the
            tenant's; 0: no limit of its own.
        token_budget: tokens per minute the key may use, within the
            tenant's; 0: no limit of its own.
        max_concurrent_requests: requests the key may have in flight,
            within the tenant's; 0: no limit of its own.
        spend_budgets: the key's own spend budgets (at most one per
            period), on top of the tenant's.

    A request made with the key takes from the key's limits and the
    tenant's together: the tighter one refuses.

    The repr shows no hash.

    .. versionadded:: 0.1.0
    """

    id: str
    key_hash: str = attrs.field(repr=False)
    name: str = ""
    prefix: str = ""
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    model_scope: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    rate_limit: int = 0
    token_budget: int = 0
    max_concurrent_requests: int = 0
    spend_budgets: tuple[SpendBudget, ...] = attrs.field(default=(), converter=_budgets)

    def limits(self) -> dict[str, int]:
        """
        The key's own limits by name (`KEY_LIMITS`), 0 for none.
        """
        return {name: getattr(self, name) for name in KEY_LIMITS}

    def usable(self, now: float) -> bool:
        """
        Whether the key works at *now*: not revoked, and *now* before its
        expiry.
        """
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def state(self, now: float) -> str:
        """
        ``"active"``, ``"expiring"`` (it has an expiry still ahead),
        ``"expired"`` or ``"revoked"`` at *now*.
        """
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is None:
            return "active"
        return "expiring" if now < self.expires_at else "expired"

    def scope_allows(self, model: str) -> bool:
        """
        Whether the key's scope lets it use *model* (an empty scope does).
        """
        return not self.model_scope or model in self.model_scope

    def view(self, now: float) -> dict[str, Any]:
        """
        What may be shown of the key at *now* (to the CLI and the admin
        API): never the key, never its hash. Times are ISO 8601 in UTC
        (``None``: not set); ``state`` is `state`.
        """
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "state": self.state(now),
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "model_scope": list(self.model_scope),
            **self.limits(),
        }

    def to_dict(self) -> dict[str, Any]:
        """
        The stored form (a JSON object), hash included.
        """
        data: dict[str, Any] = {
            "id": self.id,
            "key_hash": self.key_hash,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at,
        }
        if self.expires_at is not None:
            data["expires_at"] = self.expires_at
        if self.revoked_at is not None:
            data["revoked_at"] = self.revoked_at
        if self.model_scope:
            data["model_scope"] = list(self.model_scope)
        data.update((name, n) for name, n in self.limits().items() if n)
        if self.spend_budgets:
            data["spend_budgets"] = [b.to_dict() for b in self.spend_budgets]
        return data


def typed_field(
    data: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str = "field"
) -> Any:
    """
    ``data[name]`` if it is of type *kind* (a bool is never an int).

    Raises:
        KeyError: it is missing.
        ValueError: it has another type; the message names *what* and *name*.
    """
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        msg = f"{what} {name!r} has the wrong type ({type(value).__name__})"
        raise ValueError(msg)  # noqa: TRY004
    return value


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    return typed_field(data, name, kind, "key field")


def _time(data: dict[str, Any], name: str) -> float | None:
    if data.get(name) is None:
        return None
    value = float(_field(data, name, (int, float)))
    if not math.isfinite(value):
        msg = f"key field {name!r} is not a finite time"
        raise ValueError(msg)
    return value


def _limit(data: dict[str, Any], name: str) -> int:
    # A key's own limit; absent (a record from before keys had limits): 0.
    if name not in data:
        return 0
    value: int = _field(data, name, int)
    if not 0 <= value <= _LARGEST_LIMIT:
        msg = f"key field {name!r} is out of range"
        raise ValueError(msg)
    return value


def key_from_dict(data: object) -> KeyRecord:
    """
    Decode one key's stored form (`KeyRecord.to_dict`).

    Raises:
        ValueError: it is not a valid key record; the message says why.
    """
    if not isinstance(data, dict):
        msg = "a key is not a JSON object"
        raise ValueError(msg)  # noqa: TRY004
    try:
        key = KeyRecord(
            id=_field(data, "id", str),
            key_hash=_field(data, "key_hash", str),
            name=_field(data, "name", str),
            prefix=_field(data, "prefix", str),
            created_at=_time(data, "created_at") or 0.0,
            expires_at=_time(data, "expires_at"),
            revoked_at=_time(data, "revoked_at"),
            model_scope=tuple(
                _field({"m": m}, "m", str) for m in data.get("model_scope", [])
            ),
            **{name: _limit(data, name) for name in KEY_LIMITS},
            spend_budgets=budgets_from_list(data.get("spend_budgets", [])),
        )
    except KeyError as exc:
        msg = f"key missing field {exc}"
        raise ValueError(msg) from exc
    if not _KEY_ID.fullmatch(key.id):
        msg = f"malformed key id {key.id[:40]!r}"
        raise ValueError(msg)
    if not _HASH.fullmatch(key.key_hash):
        msg = "a key's key_hash is not a SHA-256 hex digest"
        raise ValueError(msg)
    return key
