"""
TenantManager: creates, finds, updates, re-keys and deletes tenants.

The manager keeps `TenantRecord` s in a `TenantStore` and hands out `Tenant`
handles that enforce the limits through a `LimiterStore`. Keys are looked up
by their SHA-256 hash in O(1) and compared in constant time.

A tenant created by another process sharing the store (the ``zerfoo-cloud``
command writing the LMDB file while a server runs) can use its key at once.
Lookups by key keep the tenants they found for a short time (*cache_ttl*,
half a second by default), so a key re-keyed or deleted by another process
stops working, and new limits set by it apply, within that time; changes
made through the same manager apply at once. Given `KeyRevocations`
shared by every host (`zerfoo_cloud.stores.redis.RedisKeyRevocations`),
each change is published and every manager drops the changed tenant's keys
when the message arrives, well before the time to live runs out.
"""

from __future__ import annotations

import builtins
import hmac
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from types import EllipsisType
from typing import TYPE_CHECKING, Any

import attrs

from zerfoo_cloud.audit_records.actions import AuditAction, AuditResult
from zerfoo_cloud.audit_records.entry import AuditEntry
from zerfoo_cloud.budget_records import SpendBudget, check_budget_set
from zerfoo_cloud.budgets.accounts import (
    BudgetAccount,
    accounts_at,
    hold_level,
    spent_from_level,
)
from zerfoo_cloud.budgets.status import BudgetStatus
from zerfoo_cloud.errors import (
    InvalidConfigError,
    KeyNotFoundError,
    TenantExistsError,
    TenantNotFoundError,
)
from zerfoo_cloud.key_records import (
    MAX_KEYS_PER_TENANT,
    KeyRecord,
    new_key_id,
    visible_prefix,
)
from zerfoo_cloud.limits import RateLimiter
from zerfoo_cloud.stores.memory import MemoryLimiterStore, MemoryTenantStore
from zerfoo_cloud.tenant_records import (
    API_KEY_PREFIX,
    TenantRecord,
    generate_api_key,
    hash_api_key,
)
from zerfoo_cloud.tenants.key_cache import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_CACHE_TTL,
    KeyCache,
    check_cache_size,
    check_ttl,
)
from zerfoo_cloud.tenants.key_checks import (
    check_expiry,
    check_grace,
    check_key_limits,
    check_key_name,
    check_within_tenant,
)
from zerfoo_cloud.tenants.key_events import KeyEvent, KeyEventSink, tell_key_event
from zerfoo_cloud.tenants.sign_out import check_subject, signed_out
from zerfoo_cloud.tenants.tenant import Tenant
from zerfoo_cloud.tenants.validation import (
    check_id,
    check_key,
    check_limit,
    check_models,
)

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.audit import AuditLogger
    from zerfoo_cloud.stores.protocols import (
        KeyRevocations,
        LimiterStore,
        Subscription,
        TenantStore,
    )
    from zerfoo_cloud.tenant_records import TenantConfig

__all__ = ["TenantManager"]

_log = logging.getLogger("zerfoo_cloud.tenants")


#: What a tenant's first key keeps when `TenantManager.update` gives it a
#: new secret.
_KEPT_ON_REKEY = (
    "model_scope",
    "rate_limit",
    "token_budget",
    "max_concurrent_requests",
    "spend_budgets",
)


def _original_key(key_hash: str, api_key: str, name: str, now: float) -> KeyRecord:
    # The record of a tenant's original key (created with it, or set by
    # `TenantManager.update`): named by the first 8 hex digits of its hash,
    # as before tenants had several keys.
    return KeyRecord(
        id=key_hash[:8],
        key_hash=key_hash,
        name=name,
        prefix=visible_prefix(api_key),
        created_at=now,
    )


def _rekeyed(
    record: TenantRecord, key_hash: str, api_key: str, now: float
) -> tuple[KeyRecord, ...]:
    # *record*'s keys with a new secret in the first key's place: its name,
    # scope, limits and budgets are kept (a new secret never loosens what
    # the key may do).
    first = record.first_key()
    new_first = attrs.evolve(
        _original_key(key_hash, api_key, first.name, now),
        **{name: getattr(first, name) for name in _KEPT_ON_REKEY},
    )
    others = record.keys[1:]
    if any(k.id == new_first.id or k.key_hash == new_first.key_hash for k in others):
        # Another key of this tenant: taken, as another tenant's is.
        raise TenantExistsError(record.id, field="api_key")
    return (new_first, *others)


def _usable(tenant: Tenant, now: float) -> Tenant:
    # *tenant* if the key it was found by works at *now*.
    key = tenant.key
    if key is not None and not key.usable(now):
        raise TenantNotFoundError(None)
    return tenant


def _key(record: TenantRecord, key_id: str) -> KeyRecord:
    # The key *key_id* of *record*.
    key = record.key_by_id(key_id) if isinstance(key_id, str) else None
    if key is None:
        raise KeyNotFoundError(record.id, str(key_id))
    return key


def _check_scope(record: TenantRecord, scope: tuple[str, ...]) -> None:
    # A key's scope must lie within the tenant's allow list.
    allowed = record.model_allow_list
    outside = [m for m in scope if allowed and m not in allowed]
    if outside:
        msg = (
            f"model_scope must lie within the tenant's allow list; "
            f"{outside[0][:80]!r} is not in it"
        )
        raise InvalidConfigError(msg, field="model_scope")


def _room(record: TenantRecord, now: float) -> tuple[KeyRecord, ...]:
    # The tenant's keys with room for one more: revoked and expired keys
    # (never the original one) are dropped when it holds the most it may.
    keys = record.keys
    if len(keys) < MAX_KEYS_PER_TENANT:
        return keys
    first = record.key_hash
    keys = tuple(k for k in keys if k.key_hash == first or k.usable(now))
    if len(keys) >= MAX_KEYS_PER_TENANT:
        msg = f"a tenant has at most {MAX_KEYS_PER_TENANT} keys that work"
        raise InvalidConfigError(msg, field="keys")
    return keys


class TenantManager:
    """
    Creates, finds, updates, re-keys and deletes tenants.

    Args:
        store: where tenant records live (default: a new
            `zerfoo_cloud.stores.memory.MemoryTenantStore`).
        limits: where limit state lives (default: a new
            `zerfoo_cloud.stores.memory.MemoryLimiterStore`). Pass the
            ``.tenants`` and ``.limits`` of one
            `zerfoo_cloud.stores.lmdb.LMDBStores` to share both between
            processes.
        clock: the time source, Unix seconds.
        key_prefix: the prefix of keys made by `rotate_key`.
        cache_ttl: seconds `get_by_api_key` keeps a tenant it found, 0 to
            `MAX_CACHE_TTL` (0: read the store on every lookup).
        cache_size: at most this many tenants are kept (the least recently
            used go first).
        revocations: where changes are announced to, and heard from, every
            manager sharing the store (see below); ``None``: none.
        key_events: told of each key created, updated, revoked or rotated
            through this manager (`zerfoo_cloud.tenants.key_events.KeyEvent`), after
            the store has it; it must not block. ``None``: nobody.
        audit: where `set_budgets` records its changes (``None``: not
            recorded).

    Every method but `get_by_api_key` reads the store, so changes made by
    another process sharing it are seen at once. `get_by_api_key` reads it
    for keys it does not know (a new key works at once) and keeps what it
    found for *cache_ttl* seconds: a key re-keyed or deleted by another
    process stops working, and its new limits apply, within that time.
    Changes made through this manager (`update`, `rotate_key`, `delete`)
    apply at once. Methods are safe to call from many threads.

    With *revocations*, every change (`create`, `update`, `rotate_key`,
    `create_key`, `update_key`, `revoke_key`, `rotate_api_key`, `delete`) is published once the store has it, and the manager drops the
    keys of any tenant named in a message, whichever manager sent it: a
    key re-keyed or deleted on one host is refused on every host as soon
    as the message arrives. When a message is lost the time to live still
    bounds it, and a subscription that comes back after a disconnection
    drops every kept tenant. A publish that fails is logged, never raised:
    the change is made, and other managers see it within *cache_ttl*.

    Raises:
        InvalidConfigError: *cache_ttl* or *cache_size* is out of range.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: TenantStore | None = None,
        *,
        limits: LimiterStore | None = None,
        clock: Clock = time.time,
        key_prefix: str = API_KEY_PREFIX,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        revocations: KeyRevocations | None = None,
        key_events: KeyEventSink | None = None,
        audit: AuditLogger | None = None,
    ) -> None:
        if store is None or limits is None:
            store = MemoryTenantStore() if store is None else store
            limits = MemoryLimiterStore() if limits is None else limits
        self.store: TenantStore = store
        self.limits: LimiterStore = limits
        self.clock = clock
        self.key_prefix = key_prefix
        self.limiter = RateLimiter(limits, clock=clock)
        self.cache_ttl = check_ttl(cache_ttl)
        self.cache_size = check_cache_size(cache_size)
        self._cache: KeyCache[Tenant] = KeyCache()
        self.revocations = revocations
        self.key_events = key_events
        self.audit = audit
        self._subscription: Subscription | None = None
        if revocations is not None:
            self._subscription = revocations.subscribe(self._revoked)

    def _revoked(self, tenant_id: str | None) -> None:
        # A message: drop one tenant's keys, or (None) every key.
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache.forget(tenant_id)

    def _changed(self, tenant_id: str) -> None:
        # After a store write (or a failed one, which may have committed):
        # this manager forgets at once, the others when the message comes.
        self._cache.forget(tenant_id)
        if self.revocations is None:
            return
        try:
            self.revocations.publish(tenant_id)
        except Exception as exc:  # noqa: BLE001 - the change is made; the TTL bounds the rest
            _log.warning(
                "could not announce that tenant %r changed (%s); other hosts "
                "see it within their cache time to live",
                tenant_id,
                exc,
            )

    def close(self) -> None:
        """
        Stop hearing revocations. The stores and the revocations stay open
        (whoever opened them closes them). Calling it twice is harmless.
        """
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()

    def _tenant(self, record: TenantRecord, key: KeyRecord | None = None) -> Tenant:
        return Tenant(record, self.limiter, key=key)

    def create(self, cfg: TenantConfig) -> Tenant:
        """
        Register a new tenant and return its handle.

        Raises:
            InvalidConfigError: an empty or malformed id or key, a negative or
                non-integer limit, or a malformed allow list.
            TenantExistsError: the id or the key is taken.
        """
        now = self.clock()
        api_key = check_key(cfg.api_key)
        key_hash = hash_api_key(api_key)
        record = TenantRecord(
            id=check_id(cfg.id),
            key_hash=key_hash,
            rate_limit=check_limit("rate_limit", cfg.rate_limit),
            token_budget=check_limit("token_budget", cfg.token_budget),
            max_concurrent_requests=check_limit(
                "max_concurrent_requests", cfg.max_concurrent_requests
            ),
            model_allow_list=check_models(cfg.model_allow_list),
            created_at=now,
            updated_at=now,
            keys=(_original_key(key_hash, api_key, "default", now),),
        )
        self.store.create(record)
        # Limit state left by an earlier tenant of the same id must not apply.
        self.limits.clear(record.id + "\x00")
        # A key kept from an earlier tenant of this id or key is stale now.
        self._changed(record.id)
        return self._tenant(record)

    def get(self, tenant_id: str) -> Tenant:
        """
        Return the tenant with id *tenant_id*.

        Raises:
            TenantNotFoundError: there is none.
        """
        record = self.store.get(tenant_id)
        if record is None:
            raise TenantNotFoundError(tenant_id)
        return self._tenant(record)

    def get_by_api_key(self, api_key: str) -> Tenant:
        """
        Return the tenant whose key is *api_key*, bound to that key
        (`Tenant.key`).

        The key is hashed, looked up in O(1) and the hashes compared in
        constant time; the key is never logged or kept (the cache holds its
        hash). A tenant found is kept for *cache_ttl* seconds; an unknown key
        is looked up in the store every time. A revoked key, or one at or
        past its expiry by *clock*, is refused, from the cache too (an
        expiry holds to the second in every process; a revocation made by
        another process applies when its message arrives on *revocations*,
        and within *cache_ttl* in any case).

        Raises:
            TenantNotFoundError: no tenant has this key, or it is revoked
                or expired (``tenant_id`` is ``None``, so the error carries
                no secret).
        """
        if not isinstance(api_key, str) or not api_key:
            raise TenantNotFoundError(None)
        digest = hash_api_key(api_key)
        ttl = self.cache_ttl
        cache = self._cache
        now = self.clock()
        if ttl:
            hit = cache.get(digest, now, ttl)
            if hit is not None:
                return _usable(hit, now)
            # A revocation arriving while the store is read keeps what was
            # read out of the cache (it may be from before the change).
            epoch = cache.epoch
        record = self.store.get_by_key_hash(digest)
        key = None if record is None else record.key_by_hash(digest)
        if (
            record is None
            or key is None
            or not hmac.compare_digest(key.key_hash, digest)
        ):
            raise TenantNotFoundError(None)
        tenant = self._tenant(record, key)
        if ttl:
            cache.put(
                digest, now, tenant, self.cache_size, group=record.id, epoch=epoch
            )
        return _usable(tenant, now)

    def cached_by_api_key(self, api_key: str) -> Tenant | None:
        """
        Return the tenant whose key is *api_key* if the cache holds it,
        else ``None``; never reads the store (so it never waits on one).
        """
        ttl = self.cache_ttl
        if not ttl or not isinstance(api_key, str) or not api_key:
            return None
        now = self.clock()
        hit = self._cache.get(hash_api_key(api_key), now, ttl)
        if hit is None or hit.key is None or hit.key.usable(now):
            return hit
        return None  # refused by `get_by_api_key`

    def list(self) -> list[TenantConfig]:
        """
        Return every tenant's settings (keys redacted), ordered by id.
        """
        return [record.config() for record in self.store.list()]

    def records(self) -> builtins.list[TenantRecord]:
        """
        Return every stored record (key hashes, timestamps), ordered by id.
        """
        return self.store.list()

    def update(
        self,
        tenant_id: str,
        *,
        api_key: str | None = None,
        rate_limit: int | None = None,
        token_budget: int | None = None,
        max_concurrent_requests: int | None = None,
        model_allow_list: Iterable[str] | None = None,
        incarnation: str | None = None,
    ) -> Tenant:
        """
        Change any setting but the id; ``None`` keeps a setting as it is.

        A new *api_key* replaces the old one at once (see also `rotate_key`).
        New limits apply to the next request; the quota already spent stays
        spent. With *incarnation*, the change is made only to the tenant
        with that `TenantRecord.incarnation` (checked in the same store
        transaction), never to a tenant created since under the same id.

        Raises:
            TenantNotFoundError: no tenant has id *tenant_id* (or, with
                *incarnation*, none has it and that incarnation).
            InvalidConfigError: a value is out of range.
            TenantExistsError: *api_key* belongs to another tenant.
        """
        changes: dict[str, Any] = {}
        now = self.clock()
        if api_key is not None:
            changes["key_hash"] = hash_api_key(check_key(api_key))
        if rate_limit is not None:
            changes["rate_limit"] = check_limit("rate_limit", rate_limit)
        if token_budget is not None:
            changes["token_budget"] = check_limit("token_budget", token_budget)
        if max_concurrent_requests is not None:
            changes["max_concurrent_requests"] = check_limit(
                "max_concurrent_requests", max_concurrent_requests
            )
        if model_allow_list is not None:
            changes["model_allow_list"] = check_models(model_allow_list)
        changes["updated_at"] = now
        rekeyed: list[tuple[KeyRecord, KeyRecord]] = []

        def change(old: TenantRecord) -> TenantRecord:
            if incarnation is not None and old.incarnation != incarnation:
                raise TenantNotFoundError(tenant_id)
            if api_key is None:
                return attrs.evolve(old, **changes)
            keys = _rekeyed(old, changes["key_hash"], api_key, now)
            rekeyed.append((old.first_key(), keys[0]))
            return attrs.evolve(old, keys=keys, **changes)

        try:
            record = self.store.update(tenant_id, change)
        finally:
            self._changed(tenant_id)
        if rekeyed and rekeyed[-1][0].id != rekeyed[-1][1].id:
            self._carry_budgets(tenant_id, *rekeyed[-1], now)
        return self._tenant(record)

    def rotate_key(self, tenant_id: str, *, incarnation: str | None = None) -> str:
        """
        Replace the tenant's first key by a new one and return it; the old first
        key stops working, the tenant's other keys keep working.

        With *incarnation*, only the tenant of that incarnation is re-keyed
        (see `update`).

        Raises:
            TenantNotFoundError: no tenant has id *tenant_id* (and
                *incarnation*).
        """
        key = generate_api_key(self.key_prefix)
        record = self.update(tenant_id, api_key=key, incarnation=incarnation).record
        self._key_event("rotated", tenant_id, record.first_key())
        return key

    def _key_event(
        self,
        kind: str,
        tenant_id: str,
        key: KeyRecord,
        previous: KeyRecord | None = None,
    ) -> None:
        tell_key_event(
            self.key_events, KeyEvent(kind, tenant_id, key, self.clock(), previous)
        )

    # -- several keys per tenant -----------------------------------------

    def _change_keys(
        self,
        tenant_id: str,
        change: Callable[[TenantRecord, float], tuple[KeyRecord, ...]],
        incarnation: str | None,
    ) -> TenantRecord:
        # Replace the tenant's keys by ``change(old, now)``, atomically.
        now = self.clock()

        def update(old: TenantRecord) -> TenantRecord:
            if incarnation is not None and old.incarnation != incarnation:
                raise TenantNotFoundError(tenant_id)
            return attrs.evolve(old, keys=change(old, now), updated_at=now)

        try:
            return self.store.update(tenant_id, update)
        finally:
            self._changed(tenant_id)

    def create_key(
        self,
        tenant_id: str,
        *,
        name: str,
        expires_at: float | None = None,
        model_scope: Iterable[str] = (),
        rate_limit: int = 0,
        token_budget: int = 0,
        max_concurrent_requests: int = 0,
        incarnation: str | None = None,
    ) -> tuple[str, KeyRecord]:
        """
        Issue one more key for the tenant; return it (shown this once) and
        its record. The tenant's other keys keep working.

        *expires_at* (Unix seconds) must lie in the future, at most
        `MAX_KEY_LIFETIME` away; *model_scope* must lie within the
        tenant's allow list (empty: every model the tenant may use). The
        key's own limits (*rate_limit* requests and *token_budget* tokens
        per minute, *max_concurrent_requests* in flight; 0: none of its
        own) must lie within the tenant's. A tenant keeps at most
        `MAX_KEYS_PER_TENANT` keys: revoked and expired ones are dropped to
        make room.

        Raises:
            TenantNotFoundError: no tenant has id *tenant_id* (and
                *incarnation*).
            InvalidConfigError: a bad name, expiry, scope or limit, a limit
                above the tenant's, or the tenant has
                `MAX_KEYS_PER_TENANT` keys that still work.
        """
        key_name = check_key_name(name)
        scope = check_models(model_scope)
        limits = check_key_limits(
            {
                "rate_limit": rate_limit,
                "token_budget": token_budget,
                "max_concurrent_requests": max_concurrent_requests,
            }
        )
        api_key = generate_api_key(self.key_prefix)
        made: list[KeyRecord] = []

        def change(old: TenantRecord, now: float) -> tuple[KeyRecord, ...]:
            _check_scope(old, scope)
            check_within_tenant(old, limits)
            key = KeyRecord(
                id=new_key_id(),
                key_hash=hash_api_key(api_key),
                name=key_name,
                prefix=visible_prefix(api_key),
                created_at=now,
                expires_at=check_expiry(expires_at, now),
                model_scope=scope,
                rate_limit=limits["rate_limit"],
                token_budget=limits["token_budget"],
                max_concurrent_requests=limits["max_concurrent_requests"],
            )
            made.append(key)
            return (*_room(old, now), key)

        self._change_keys(tenant_id, change, incarnation)
        self._key_event("created", tenant_id, made[-1])
        return api_key, made[-1]

    def list_keys(self, tenant_id: str) -> builtins.list[KeyRecord]:
        """
        Return the tenant's keys (hashes inside, never a key), oldest first.

        Raises:
            TenantNotFoundError: no tenant has id *tenant_id*.
        """
        return builtins.list(self.get(tenant_id).record.keys)

    def revoke_key(
        self, tenant_id: str, key_id: str, *, incarnation: str | None = None
    ) -> KeyRecord:
        """
        Revoke one key of the tenant: it stops working at once here, in
        other processes when the message on *revocations* arrives (without
        one, within *cache_ttl*). Revoking a revoked key changes nothing.
        Returns the key's record.

        Raises:
            TenantNotFoundError: no tenant has id *tenant_id*.
            KeyNotFoundError: the tenant has no key *key_id*.
        """
        done: list[tuple[KeyRecord, bool]] = []

        def change(old: TenantRecord, now: float) -> tuple[KeyRecord, ...]:
            key = _key(old, key_id)
            revoked = (
                key if key.revoked_at is not None else attrs.evolve(key, revoked_at=now)
            )
            done.append((revoked, revoked is not key))
            return tuple(revoked if k is key else k for k in old.keys)

        self._change_keys(tenant_id, change, incarnation)
        revoked, changed = done[-1]
        if changed:
            self._key_event("revoked", tenant_id, revoked)
        return revoked

    def update_key(
        self,
        tenant_id: str,
        key_id: str,
        *,
        name: str | None = None,
        expires_at: float | EllipsisType | None = ...,
        model_scope: Iterable[str] | None = None,
        rate_limit: int | None = None,
        token_budget: int | None = None,
        max_concurrent_requests: int | None = None,
        incarnation: str | None = None,
    ) -> KeyRecord:
        """
        Change settings of one key that still works; ``None`` (``...`` for
        *expires_at*, where ``None`` means "never expires") keeps a setting
        as it is. Returns the key's new record.

        Values are checked as `create_key` checks them: the key's own
        limits must lie within the tenant's (0: none of its own). New
        limits apply to the key's next request; what it already spent
        stays spent. The change reaches other processes as every key
        change does (`revoke_key`), and a change that alters the key is told
        to *key_events* (``updated``, with the key's record before it).

        Raises:
            TenantNotFoundError: no tenant has id *tenant_id* (and
                *incarnation*).
            KeyNotFoundError: the tenant has no key *key_id*, or it no
                longer works (revoked or expired).
            InvalidConfigError: a bad value (field: its name); nothing is
                changed.
        """
        changes: dict[str, Any] = check_key_limits(
            {
                "rate_limit": rate_limit,
                "token_budget": token_budget,
                "max_concurrent_requests": max_concurrent_requests,
            }
        )
        limits = dict(changes)
        if name is not None:
            changes["name"] = check_key_name(name)
        scope = None if model_scope is None else check_models(model_scope)
        if scope is not None:
            changes["model_scope"] = scope
        done: list[tuple[KeyRecord, KeyRecord]] = []

        def change(old: TenantRecord, now: float) -> tuple[KeyRecord, ...]:
            key = _key(old, key_id)
            if not key.usable(now):
                raise KeyNotFoundError(tenant_id, key_id)
            if scope is not None:
                _check_scope(old, scope)
            check_within_tenant(old, limits)
            if expires_at is not ...:
                changes["expires_at"] = check_expiry(expires_at, now)
            updated = attrs.evolve(key, **changes)
            done.append((updated, key))
            return tuple(updated if k is key else k for k in old.keys)

        self._change_keys(tenant_id, change, incarnation)
        updated, previous = done[-1]
        if updated != previous:
            self._key_event("updated", tenant_id, updated, previous)
        return updated

    def rotate_api_key(
        self,
        tenant_id: str,
        key_id: str,
        *,
        grace: float = 0.0,
        incarnation: str | None = None,
    ) -> tuple[str, KeyRecord, KeyRecord]:
        """
        Replace one key by a new one with the same name, scope and limits; return
        the new key (shown this once), its record and the old key's record.

        The new key works at once. The old one keeps working for *grace*
        seconds (0 to `MAX_GRACE`): it gets ``expires_at = now + grace``
        (or keeps an earlier expiry it had); with no grace it is revoked
        at once.

        Raises:
            TenantNotFoundError: no tenant has id *tenant_id*.
            KeyNotFoundError: the tenant has no key *key_id*, or it no longer
                works.
            InvalidConfigError: *grace* is out of range.
        """
        seconds = check_grace(grace)
        api_key = generate_api_key(self.key_prefix)
        done: list[tuple[KeyRecord, KeyRecord]] = []

        def change(old: TenantRecord, now: float) -> tuple[KeyRecord, ...]:
            key = _key(old, key_id)
            if not key.usable(now):
                raise KeyNotFoundError(tenant_id, key_id)
            if seconds:
                until = now + seconds
                if key.expires_at is not None:
                    until = min(until, key.expires_at)
                retired = attrs.evolve(key, expires_at=until)
            else:
                retired = attrs.evolve(key, revoked_at=now)
            new = KeyRecord(
                id=new_key_id(),
                key_hash=hash_api_key(api_key),
                name=key.name,
                prefix=visible_prefix(api_key),
                created_at=now,
                expires_at=key.expires_at,
                model_scope=key.model_scope,
                rate_limit=key.rate_limit,
                token_budget=key.token_budget,
                max_concurrent_requests=key.max_concurrent_requests,
                spend_budgets=key.spend_budgets,
            )
            done.append((new, retired))
            kept = tuple(retired if k is key else k for k in _room(old, now))
            return (*kept, new)

        self._change_keys(tenant_id, change, incarnation)
        new, retired = done[-1]
        self._carry_budgets(tenant_id, retired, new, self.clock())
        self._key_event("rotated", tenant_id, new, retired)
        return api_key, new, retired

    def _carry_budgets(
        self, tenant_id: str, old: KeyRecord, new: KeyRecord, now: float
    ) -> None:
        # A rotated key's budgets go on where the old key's stand in this
        # period: what it spent is spent, what it holds for requests in
        # flight is held, so a rotation never gives a key more room.
        for budget in old.spend_budgets:
            was = BudgetAccount.at(tenant_id, old.id, budget, now)
            hold = self.limits.get(was.hold_key)
            spent = self.limits.get(was.spent_key)
            used = 0 if hold is None else budget.amount - hold_level(hold.level)
            paid = 0 if spent is None else spent_from_level(spent.level)
            if not (used or paid):
                continue
            account = BudgetAccount.at(tenant_id, new.id, budget, now)
            hold_bucket, spent_bucket = account.settlement(0, 0)
            self.limits.settle(
                None,
                (
                    (*hold_bucket[:3], -used),
                    (*spent_bucket[:3], -paid),
                ),
                now,
            )

    # -- spend budgets ---------------------------------------------------

    def set_budgets(
        self,
        tenant_id: str,
        budgets: Sequence[SpendBudget],
        *,
        key_id: str | None = None,
        actor: str = "operator",
    ) -> TenantRecord:
        """
        Replace the spend budgets of the tenant, or of its key *key_id*, by
        *budgets* (at most one per period; empty: none) and return the new
        record.

        A budget whose amount changes keeps what its current period has
        spent: the period's hold bucket is moved by the difference (a lower
        amount may leave it in debt: requests are refused until the next
        period). A budget whose time zone or currency changes starts a new
        period. The change is audited (with *actor*) when the manager has
        an *audit* logger, and other hosts drop their copy of the tenant as
        for `update`.

        Raises:
            InvalidConfigError: a budget is not a `SpendBudget`, or two share
                a period; nothing changed.
            TenantNotFoundError: no tenant has id *tenant_id*.
            KeyNotFoundError: the tenant has no key *key_id*.
        """
        new = check_budget_set(budgets)
        old: list[tuple[SpendBudget, ...]] = []

        def change(record: TenantRecord) -> TenantRecord:
            if key_id is None:
                old.append(record.spend_budgets)
                return attrs.evolve(record, spend_budgets=new, updated_at=now)
            key = _key(record, key_id)
            old.append(key.spend_budgets)
            keys = tuple(
                attrs.evolve(k, spend_budgets=new) if k is key else k
                for k in record.keys
            )
            return attrs.evolve(record, keys=keys, updated_at=now)

        now = self.clock()
        try:
            record = self.store.update(tenant_id, change)
        finally:
            self._changed(tenant_id)
        self._move_holds(tenant_id, key_id, old[-1], new, now)
        where = "" if key_id is None else f"/keys/{key_id}"
        self._audit_update(tenant_id, f"spend_budgets{where} by {actor}")
        return record

    def _audit_update(self, tenant_id: str, resource: str) -> None:
        # A change made through the manager, when it has an audit logger.
        if self.audit is not None:
            self.audit.log(
                AuditEntry(
                    tenant_id=tenant_id,
                    action=AuditAction.UPDATE,
                    result=AuditResult.SUCCESS,
                    resource=resource[:200],
                )
            )

    def _move_holds(
        self,
        tenant_id: str,
        key_id: str | None,
        old: Sequence[SpendBudget],
        new: Sequence[SpendBudget],
        now: float,
    ) -> None:
        # Move the current period's hold bucket of every budget whose amount
        # changed by the difference, so what was spent stays spent.
        before = {(b.period, b.timezone, b.currency): b for b in old}
        for budget in new:
            was = before.get((budget.period, budget.timezone, budget.currency))
            if was is None or was.amount == budget.amount:
                continue
            account = BudgetAccount.at(tenant_id, key_id, was, now)
            # Write the bucket as the old amount left it (a bucket never used
            # reads as full at whatever capacity is given), then move it;
            # the larger capacity keeps the move from being capped.
            self.limits.admit(None, (account.hold(0),), now)
            delta = budget.amount - was.amount
            capacity = float(max(budget.amount, was.amount))
            self.limits.settle(None, ((account.hold_key, capacity, 0.0, delta),), now)

    def spend(
        self, tenant_id: str, *, key_id: str | None = None
    ) -> tuple[BudgetStatus, ...]:
        """
        The current period of each spend budget of the tenant (with
        *key_id*: of that key): spent, held by requests in flight and
        remaining, in micro-units.

        Raises:
            TenantNotFoundError: no tenant has id *tenant_id*.
            KeyNotFoundError: the tenant has no key *key_id*.
        """
        record = self.get(tenant_id).record
        if key_id is None:
            accounts = accounts_at(
                record.id, record.spend_budgets, None, (), self.clock()
            )
        else:
            key = _key(record, key_id)
            accounts = accounts_at(
                record.id, (), key.id, key.spend_budgets, self.clock()
            )
        return tuple(self._status(account) for account in accounts)

    def _status(self, account: BudgetAccount) -> BudgetStatus:
        # One account's status, read from its two buckets.
        amount = account.budget.amount
        spent_state = self.limits.get(account.spent_key)
        hold_state = self.limits.get(account.hold_key)
        spent = 0 if spent_state is None else spent_from_level(spent_state.level)
        remaining = amount if hold_state is None else hold_level(hold_state.level)
        period = account.period
        return BudgetStatus(
            budget=account.budget,
            key_id=account.key_id,
            period_start=period.start,
            period_end=period.end,
            spent=spent,
            held=amount - remaining - spent,
            remaining=remaining,
        )

    def sign_out(
        self, tenant_id: str, *, subject: str | None = None, actor: str = "operator"
    ) -> TenantRecord:
        """
        End the tenant's console and admin-API sessions issued until now:
        everyone's, or only *subject*'s; they are refused on their next
        request on every host (sessions are checked against the stored
        record). Audited (with *actor*) when the manager has an *audit*
        logger; returns the new record.

        Raises:
            InvalidConfigError: *subject* is empty or too long; nothing changed.
            TenantNotFoundError: no tenant has id *tenant_id*.
        """
        if subject is not None:
            check_subject(subject)
        now = self.clock()
        try:
            record = self.store.update(tenant_id, lambda r: signed_out(r, subject, now))
        finally:
            self._changed(tenant_id)
        whom = "" if subject is None else f" of {subject}"
        self._audit_update(tenant_id, f"sessions{whom} signed out by {actor}")
        return record

    def delete(self, tenant_id: str) -> None:
        """
        Remove the tenant; its keys stop working at once.

        Raises:
            TenantNotFoundError: no tenant has id *tenant_id*.
        """
        try:
            self.store.delete(tenant_id)
        finally:
            self._changed(tenant_id)
        self.limits.clear(tenant_id + "\x00")
