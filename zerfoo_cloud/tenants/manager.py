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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from zerfoo_cloud.errors import TenantNotFoundError
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
from zerfoo_cloud.tenants.tenant import Tenant
from zerfoo_cloud.tenants.validation import (
    check_id,
    check_key,
    check_limit,
    check_models,
)

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.stores.protocols import (
        KeyRevocations,
        LimiterStore,
        Subscription,
        TenantStore,
    )
    from zerfoo_cloud.tenant_records import TenantConfig

__all__ = ["TenantManager"]

_log = logging.getLogger("zerfoo_cloud.tenants")


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

    Every method but `get_by_api_key` reads the store, so changes made by
    another process sharing it are seen at once. `get_by_api_key` reads it
    for keys it does not know (a new key works at once) and keeps what it
    found for *cache_ttl* seconds: a key re-keyed or deleted by another
    process stops working, and its new limits apply, within that time.
    Changes made through this manager (`update`, `rotate_key`, `delete`)
    apply at once. Methods are safe to call from many threads.

    With *revocations*, every change (`create`, `update`, `rotate_key`,
    `delete`) is published once the store has it, and the manager drops the
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

    def _tenant(self, record: TenantRecord) -> Tenant:
        return Tenant(record, self.limiter)

    def create(self, cfg: TenantConfig) -> Tenant:
        """
        Register a new tenant and return its handle.

        Raises:
            InvalidConfigError: an empty or malformed id or key, a negative or
                non-integer limit, or a malformed allow list.
            TenantExistsError: the id or the key is taken.
        """
        now = self.clock()
        record = TenantRecord(
            id=check_id(cfg.id),
            key_hash=hash_api_key(check_key(cfg.api_key)),
            rate_limit=check_limit("rate_limit", cfg.rate_limit),
            token_budget=check_limit("token_budget", cfg.token_budget),
            max_concurrent_requests=check_limit(
                "max_concurrent_requests", cfg.max_concurrent_requests
            ),
            model_allow_list=check_models(cfg.model_allow_list),
            created_at=now,
            updated_at=now,
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
        Return the tenant whose key is *api_key*.

        The key is hashed, looked up in O(1) and the hashes compared in
        constant time; the key is never logged or kept (the cache holds its
        hash). A tenant found is kept for *cache_ttl* seconds; an unknown key
        is looked up in the store every time.

        Raises:
            TenantNotFoundError: no tenant has this key (``tenant_id`` is
                ``None``, so the error carries no secret).
        """
        if not isinstance(api_key, str) or not api_key:
            raise TenantNotFoundError(None)
        digest = hash_api_key(api_key)
        ttl = self.cache_ttl
        cache = self._cache
        if ttl:
            now = self.clock()
            hit = cache.get(digest, now, ttl)
            if hit is not None:
                return hit
            # A revocation arriving while the store is read keeps what was
            # read out of the cache (it may be from before the change).
            epoch = cache.epoch
        record = self.store.get_by_key_hash(digest)
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            raise TenantNotFoundError(None)
        tenant = self._tenant(record)
        if ttl:
            cache.put(
                digest, now, tenant, self.cache_size, group=record.id, epoch=epoch
            )
        return tenant

    def cached_by_api_key(self, api_key: str) -> Tenant | None:
        """
        Return the tenant whose key is *api_key* if the cache holds it,
        else ``None``; never reads the store (so it never waits on one).
        """
        ttl = self.cache_ttl
        if not ttl or not isinstance(api_key, str) or not api_key:
            return None
        return self._cache.get(hash_api_key(api_key), self.clock(), ttl)

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
        changes["updated_at"] = self.clock()

        def change(old: TenantRecord) -> TenantRecord:
            if incarnation is not None and old.incarnation != incarnation:
                raise TenantNotFoundError(tenant_id)
            return attrs.evolve(old, **changes)

        try:
            record = self.store.update(tenant_id, change)
        finally:
            self._changed(tenant_id)
        return self._tenant(record)

    def rotate_key(self, tenant_id: str, *, incarnation: str | None = None) -> str:
        """
        Issue a new key for the tenant and return it; the old key stops working.

        With *incarnation*, only the tenant of that incarnation is re-keyed
        (see `update`).

        Raises:
            TenantNotFoundError: no tenant has id *tenant_id* (and
                *incarnation*).
        """
        key = generate_api_key(self.key_prefix)
        self.update(tenant_id, api_key=key, incarnation=incarnation)
        return key

    def delete(self, tenant_id: str) -> None:
        """
        Remove the tenant; its key stops working at once.

        Raises:
            TenantNotFoundError: no tenant has id *tenant_id*.
        """
        try:
            self.store.delete(tenant_id)
        finally:
            self._changed(tenant_id)
        self.limits.clear(tenant_id + "\x00")
