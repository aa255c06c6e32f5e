"""
Tenant records: what a `TenantStore` keeps of each tenant, and its key.

`TenantConfig` is a tenant's settings as given (its API key in the clear);
`TenantRecord` is what stores keep instead (the key's SHA-256 hash, the
times, the incarnation stamp) and its stored form. `hash_api_key`,
`generate_api_key` and `new_incarnation` make the key material. Records sit
below the tenants service and the stores: both import them, and they import
neither.

API keys are never stored: only their SHA-256 hash is. Keys from
`generate_api_key` carry 256 bits of randomness, so their unsalted hash
cannot be reversed; keys chosen by people should be as long and random.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable
from typing import Any

import attrs

from zerfoo_cloud._redacted import REDACTED
from zerfoo_cloud.budget_records import SpendBudget, budgets_from_list
from zerfoo_cloud.key_records import (
    MAX_KEYS_PER_TENANT,
    KeyRecord,
    key_from_dict,
    typed_field,
)

__all__ = [
    "API_KEY_PREFIX",
    "MAX_SIGNED_OUT_SUBJECTS",
    "TenantConfig",
    "TenantRecord",
    "generate_api_key",
    "hash_api_key",
    "new_incarnation",
]

#: Every key made by `generate_api_key` starts with this, so leaked keys are
#: easy to recognise (secret scanners, logs).
API_KEY_PREFIX = "zc-"
#: A tenant record names at most this many people signed out one by one
#: (`TenantRecord.subjects_not_before`).
MAX_SIGNED_OUT_SUBJECTS = 256


def generate_api_key(prefix: str = API_KEY_PREFIX) -> str:
    """
    Return a new API key: *prefix* and 43 URL-safe characters (256 random bits).

    .. versionadded:: 0.1.0
    """
    return prefix + secrets.token_urlsafe(32)


def new_incarnation() -> str:
    """
    Return a new, unguessable incarnation stamp (32 hex digits).

    Every tenant created gets a new one, so a tenant deleted and created
    again under the same id is told apart from its earlier self.
    """
    return secrets.token_hex(16)


def hash_api_key(api_key: str) -> str:
    """
    Return the hex SHA-256 hash of *api_key*: what stores keep instead of it.

    .. versionadded:: 0.1.0
    """
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()


def _redacted_repr(_: object) -> str:
    return repr(REDACTED)


def _to_tuple(models: Iterable[str]) -> tuple[str, ...]:
    if isinstance(models, str):
        return (models,)
    return tuple(models)


def _key_tuple(keys: Iterable[KeyRecord]) -> tuple[KeyRecord, ...]:
    return tuple(keys)


def _budget_tuple(budgets: Iterable[SpendBudget]) -> tuple[SpendBudget, ...]:
    return tuple(budgets)


def _stamp_tuple(stamps: Iterable[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((str(s), float(t)) for s, t in stamps))


@attrs.frozen
class TenantConfig:
    """
    The settings of one tenant, as given to `TenantManager.create`.

    Attributes:
        id: the tenant id (see `TENANT_ID_PATTERN`).
        api_key: the tenant's key; `Tenant.config` shows `REDACTED` instead,
            and the repr never shows it.
        rate_limit: requests per minute; 0 means unlimited.
        token_budget: tokens (prompt plus completion) per minute; 0 means
            unlimited.
        max_concurrent_requests: requests in flight at once; 0 means
            unlimited.
        model_allow_list: the models the tenant may use; empty means all.

    .. versionadded:: 0.1.0
    """

    id: str
    api_key: str = attrs.field(repr=_redacted_repr)
    rate_limit: int
    token_budget: int
    max_concurrent_requests: int = 0
    model_allow_list: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)


@attrs.frozen
class TenantRecord:
    """
    What a `TenantStore` keeps of a tenant: its settings and its key's hash.

    *incarnation* is a stamp made when the tenant is created (see
    `new_incarnation`) and kept through every update: a tenant deleted and
    created again under the same id has another one, so whatever was bound
    to the earlier tenant (an admin session) is not taken for the new one.

    *sessions_not_before* (Unix seconds, 0: never) refuses every console
    and admin-API session of the tenant issued before it;
    *subjects_not_before* (pairs of subject and Unix seconds, at most
    `MAX_SIGNED_OUT_SUBJECTS`, sorted) does so for one person's sessions
    (see `TenantManager.sign_out`).

    .. versionadded:: 0.1.0
    """

    id: str
    key_hash: str
    rate_limit: int
    token_budget: int
    max_concurrent_requests: int = 0
    model_allow_list: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    created_at: float = 0.0
    updated_at: float = 0.0
    incarnation: str = attrs.field(factory=new_incarnation)
    keys: tuple[KeyRecord, ...] = attrs.field(
        default=attrs.Factory(lambda self: (_first_key(self),), takes_self=True),
        converter=_key_tuple,
        repr=False,
    )
    spend_budgets: tuple[SpendBudget, ...] = attrs.field(
        default=(), converter=_budget_tuple
    )
    sessions_not_before: float = 0.0
    subjects_not_before: tuple[tuple[str, float], ...] = attrs.field(
        default=(), converter=_stamp_tuple
    )

    def sessions_valid_from(self, subject: str) -> float:
        """
        The Unix time before which a session of *subject* for this tenant
        was issued too early to be accepted (0: any).
        """
        return max(
            [self.sessions_not_before]
            + [t for s, t in self.subjects_not_before if s == subject]
        )

    def __attrs_post_init__(self) -> None:
        # The first key is the one ``key_hash`` names. A record made from
        # another with only ``key_hash`` changed (``attrs.evolve``) gets a
        # first key for the new hash, with the old one's name.
        keys = self.keys
        if not keys:
            msg = "a tenant has at least one key"
            raise ValueError(msg)
        if keys[0].key_hash != self.key_hash:
            first = attrs.evolve(
                _first_key(self), name=keys[0].name, created_at=self.updated_at
            )
            keys = (first, *keys[1:])
            object.__setattr__(self, "keys", keys)
        if len({k.key_hash for k in keys}) != len(keys) or len(
            {k.id for k in keys}
        ) != len(keys):
            msg = "two keys of the tenant share an id or a hash"
            raise ValueError(msg)

    @property
    def key_id(self) -> str:
        """
        The id of the tenant's first key (the one ``key_hash`` names): the
        first 8 hex digits of its hash for a tenant's original key.
        """
        return self.first_key().id

    def first_key(self) -> KeyRecord:
        """
        The key whose hash is ``key_hash``: the tenant's original key (the
        one `TenantManager.create` and `TenantManager.rotate_key` set).
        """
        return self.keys[0]

    def key_hashes(self) -> frozenset[str]:
        """
        The hashes of every key of the tenant (live, expiring and revoked):
        what a store's key index holds for it.
        """
        return frozenset(k.key_hash for k in self.keys)

    def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        """
        The key with this hash, or ``None``.
        """
        for key in self.keys:
            if key.key_hash == key_hash:
                return key
        return None

    def key_by_id(self, key_id: str) -> KeyRecord | None:
        """
        The key with this id, or ``None``.
        """
        for key in self.keys:
            if key.id == key_id:
                return key
        return None

    def to_bytes(self) -> bytes:
        """
        Encode as compact JSON (the stored form). A tenant with only its
        original key is stored as before tenants had several keys.
        """
        data: dict[str, Any] = {
            "v": 1,
            "id": self.id,
            "key_hash": self.key_hash,
            "rate_limit": self.rate_limit,
            "token_budget": self.token_budget,
            "max_concurrent_requests": self.max_concurrent_requests,
            "model_allow_list": list(self.model_allow_list),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "incarnation": self.incarnation,
        }
        if self.keys != (_first_key(self),):
            data["keys"] = [k.to_dict() for k in self.keys]
        if self.spend_budgets:
            data["spend_budgets"] = [b.to_dict() for b in self.spend_budgets]
        if self.sessions_not_before:
            data["sessions_not_before"] = self.sessions_not_before
        if self.subjects_not_before:
            data["subjects_not_before"] = dict(self.subjects_not_before)
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> TenantRecord:
        """
        Decode the stored form.

        Raises:
            ValueError: *raw* is not a valid record; the message says why.
        """
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            msg = f"not JSON ({exc})"
            raise ValueError(msg) from exc
        if not isinstance(data, dict):
            msg = "not a JSON object"
            raise ValueError(msg)  # noqa: TRY004
        if data.get("v") != 1:
            msg = f"unknown record version {data.get('v')!r}"
            raise ValueError(msg)
        try:
            keys = _stored_keys(data)
            record = cls(
                id=_typed(data, "id", str),
                key_hash=_typed(data, "key_hash", str),
                rate_limit=_typed(data, "rate_limit", int),
                token_budget=_typed(data, "token_budget", int),
                max_concurrent_requests=_typed(data, "max_concurrent_requests", int),
                model_allow_list=tuple(
                    _typed({"m": m}, "m", str)
                    for m in _typed(data, "model_allow_list", list)
                ),
                created_at=float(_typed(data, "created_at", (int, float))),
                updated_at=float(_typed(data, "updated_at", (int, float))),
                incarnation=_stored_incarnation(data),
                spend_budgets=budgets_from_list(data.get("spend_budgets", [])),
                sessions_not_before=float(
                    _typed(data, "sessions_not_before", (int, float))
                    if "sessions_not_before" in data
                    else 0.0
                ),
                subjects_not_before=_stored_stamps(data),
                **keys,
            )
        except KeyError as exc:
            msg = f"missing field {exc}"
            raise ValueError(msg) from exc
        if not re.fullmatch(r"[0-9a-f]{64}", record.key_hash):
            msg = "key_hash is not a SHA-256 hex digest"
            raise ValueError(msg)
        return record

    def config(self) -> TenantConfig:
        """
        Return the settings, with the key shown as `REDACTED`.
        """
        return TenantConfig(
            id=self.id,
            api_key=REDACTED,
            rate_limit=self.rate_limit,
            token_budget=self.token_budget,
            max_concurrent_requests=self.max_concurrent_requests,
            model_allow_list=self.model_allow_list,
        )


def _first_key(record: TenantRecord) -> KeyRecord:
    # The key record of a tenant's original key, as the tenant was created.
    return KeyRecord(
        id=record.key_hash[:8],
        key_hash=record.key_hash,
        name="default",
        prefix="",
        created_at=record.created_at,
    )


def _stored_keys(data: dict[str, Any]) -> dict[str, tuple[KeyRecord, ...]]:
    # The ``keys`` argument of a stored record: none for one stored before
    # tenants had several keys (its key becomes its first key).
    if "keys" not in data:
        return {}
    raw = _typed(data, "keys", list)
    if not 1 <= len(raw) <= MAX_KEYS_PER_TENANT:
        msg = f"a tenant has 1 to {MAX_KEYS_PER_TENANT} keys, not {len(raw)}"
        raise ValueError(msg)
    keys = tuple(key_from_dict(k) for k in raw)
    if keys[0].key_hash != data.get("key_hash"):
        msg = "the first key is not the one key_hash names"
        raise ValueError(msg)
    return {"keys": keys}


def _stored_stamps(data: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    # The people signed out one by one: none for records stored before.
    if "subjects_not_before" not in data:
        return ()
    raw = _typed(data, "subjects_not_before", dict)
    if len(raw) > MAX_SIGNED_OUT_SUBJECTS:
        msg = f"more than {MAX_SIGNED_OUT_SUBJECTS} subjects_not_before"
        raise ValueError(msg)
    return tuple(
        (subject, float(_typed(raw, subject, (int, float)))) for subject in raw
    )


def _stored_incarnation(data: dict[str, Any]) -> str:
    """
    The incarnation of a stored record; records written before tenants had
    one get a stable stamp derived from their creation time, which no tenant
    created since can have.
    """
    if "incarnation" not in data:
        return "legacy-" + float(_typed(data, "created_at", (int, float))).hex()
    value = _typed(data, "incarnation", str)
    if not value:
        msg = "field 'incarnation' is empty"
        raise ValueError(msg)
    return str(value)


_typed = typed_field
