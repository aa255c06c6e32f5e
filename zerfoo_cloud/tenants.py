"""
Tenants: API keys, limits and the manager that stores them.

A tenant is a customer of the service. `TenantManager` creates, finds,
updates, re-keys and deletes tenants in a `TenantStore`; a `Tenant` handle
enforces the tenant's limits through a `LimiterStore`.

API keys are never stored: only their SHA-256 hash is, looked up in O(1) and
compared in constant time. Keys from `generate_api_key` carry 256 bits of
randomness, so their unsalted hash cannot be reversed; keys chosen by people
should be as long and random.

A tenant created by another process sharing the store (the ``zerfoo-cloud``
command writing the LMDB file while a server runs) can use its key at once.
Lookups by key keep the tenants they found for a short time (`TenantManager`'s
*cache_ttl*, half a second by default), so a key re-keyed or deleted by
another process stops working, and new limits set by it apply, within that
time; changes made through the same manager apply at once.
"""

from __future__ import annotations

import builtins
import collections
import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from zerfoo_cloud._field_limits import MAX_MODEL_LENGTH
from zerfoo_cloud._redacted import REDACTED
from zerfoo_cloud.errors import InvalidConfigError, TenantNotFoundError
from zerfoo_cloud.limits import MAX_LIMIT, Decision, Rate, RateLimiter
from zerfoo_cloud.stores.memory import MemoryLimiterStore, MemoryTenantStore

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.stores.protocols import LimiterStore, TenantStore

__all__ = [
    "API_KEY_PREFIX",
    "REDACTED",
    "Admission",
    "Tenant",
    "TenantConfig",
    "TenantManager",
    "TenantRecord",
    "generate_api_key",
    "hash_api_key",
    "new_incarnation",
]

#: Every key made by `generate_api_key` starts with this, so leaked keys are
#: easy to recognise (secret scanners, logs).
API_KEY_PREFIX = "zc-"
#: Tenant ids: 1 to 128 letters, digits and ``. _ - : @``, starting with a
#: letter or digit. They appear in URLs, store keys and metric labels.
TENANT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
#: Model names in allow lists: at most this many characters (the name
#: `MAX_MODEL_LENGTH` has everywhere else, kept for callers of this one).
MAX_MODEL_NAME = MAX_MODEL_LENGTH
#: At most this many models in one allow list.
MAX_ALLOW_LIST = 1024
#: The period of ``rate_limit`` and ``token_budget``: one minute.
PERIOD_SECONDS = 60.0
#: How long `TenantManager.get_by_api_key` keeps a tenant it found, by default.
DEFAULT_CACHE_TTL = 0.5
#: The longest *cache_ttl*: a key deleted by another process stops working
#: within one second.
MAX_CACHE_TTL = 1.0
#: How many tenants `TenantManager.get_by_api_key` keeps, by default.
DEFAULT_CACHE_SIZE = 10_000


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

    @property
    def key_id(self) -> str:
        """
        A short, public fingerprint of the key (first 8 hex digits of its hash).
        """
        return self.key_hash[:8]

    def to_bytes(self) -> bytes:
        """
        Encode as compact JSON (the stored form).
        """
        return json.dumps(
            {
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
            },
            separators=(",", ":"),
        ).encode()

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


def _typed(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        msg = f"field {name!r} has the wrong type ({type(value).__name__})"
        raise ValueError(msg)  # noqa: TRY004
    return value


@attrs.frozen
class Admission:
    """
    The outcome of `Tenant.admit`: one request and its token reservation.

    ``allowed`` is true when both were granted; otherwise nothing was taken
    from either bucket, and the refused decision(s) say when to retry.
    ``requests`` and ``tokens`` are ``None`` for unlimited quotas.
    ``concurrency_refused`` is true when `Tenant.begin_request` found every
    concurrency slot taken (the decisions then report the quotas as they
    are).

    .. versionadded:: 0.1.0
    """

    allowed: bool
    requests: Decision | None
    tokens: Decision | None
    concurrency_refused: bool = False

    @property
    def retry_after(self) -> float:
        """
        Seconds until the same request would pass (0.0 if it passed).
        """
        waits = [
            d.retry_after
            for d in (self.requests, self.tokens)
            if d is not None and not d.allowed
        ]
        return max(waits, default=0.0)

    @property
    def refused_by(self) -> str | None:
        """
        ``"concurrency"``, ``"requests"`` or ``"tokens"``: the limit that
        refused, or ``None``.
        """
        if self.concurrency_refused:
            return "concurrency"
        if self.requests is not None and not self.requests.allowed:
            return "requests"
        if self.tokens is not None and not self.tokens.allowed:
            return "tokens"
        return None


class Tenant:
    """
    A handle on one tenant: its settings and its limits.

    Handles are cheap snapshots made by `TenantManager`; the limit state
    lives in the manager's `LimiterStore`, so every handle of a tenant (in
    any thread, and with a shared store in any process) sees the same
    quotas. Limits of 0 are unlimited: their checks always pass.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_con_key",
        "_limiter",
        "_record",
        "_req_key",
        "_req_rate",
        "_tok_key",
        "_tok_rate",
    )

    def __init__(self, record: TenantRecord, limiter: RateLimiter) -> None:
        self._record = record
        self._limiter = limiter
        self._req_key = record.id + "\x00req"
        self._tok_key = record.id + "\x00tok"
        self._con_key = record.id + "\x00con"
        limit, budget = record.rate_limit, record.token_budget
        self._req_rate = Rate(limit, PERIOD_SECONDS) if limit else None
        self._tok_rate = Rate(budget, PERIOD_SECONDS) if budget else None

    def __repr__(self) -> str:
        r = self._record
        return (
            f"<Tenant {r.id!r} key={r.key_id}… rate_limit={r.rate_limit} "
            f"token_budget={r.token_budget} "
            f"max_concurrent_requests={r.max_concurrent_requests}>"
        )

    @property
    def id(self) -> str:
        """
        The tenant id.
        """
        return self._record.id

    @property
    def record(self) -> TenantRecord:
        """
        The stored record this handle was made from.
        """
        return self._record

    def config(self) -> TenantConfig:
        """
        The tenant's settings, with the API key redacted.
        """
        return self._record.config()

    # -- the admission primitive ----------------------------------------

    def _take(self, key: str, rate: Rate, cost: int) -> Decision:
        # One bucket through the admission primitive, without a slot.
        return self._limiter.admit(None, ((key, rate, cost),))[1][0]

    def _admission(self, tokens: int, slot: tuple[str, int] | None) -> Admission:
        # One request, *tokens* tokens and *slot* (when given): all or none.
        req_rate, tok_rate = self._req_rate, self._tok_rate
        asks: list[tuple[str, Rate, int]] = []
        if req_rate is not None:
            asks.append((self._req_key, req_rate, 1))
        if tok_rate is not None:
            asks.append((self._tok_key, tok_rate, tokens))
        if slot is None and not asks:
            return _ADMITTED
        free, decisions = self._limiter.admit(slot, asks)
        req = decisions[0] if req_rate is not None else None
        tok = decisions[-1] if tok_rate is not None else None
        if not free:
            return Admission(False, req, tok, concurrency_refused=True)
        allowed = (req is None or req.allowed) and (tok is None or tok.allowed)
        return Admission(allowed, req, tok)

    # -- requests ---------------------------------------------------------

    def allow_request(self) -> bool:
        """
        Spend one request of the per-minute quota; ``False`` if none is left.
        """
        return self.acquire_request().allowed

    def acquire_request(self) -> Decision:
        """
        Like `allow_request`, returning the full decision (retry and reset times).
        """
        rate = self._req_rate
        if rate is None:
            return _UNLIMITED
        return self._take(self._req_key, rate, 1)

    def request_quota(self) -> Decision:
        """
        The request quota now, without spending any.
        """
        rate = self._req_rate
        return _UNLIMITED if rate is None else self._limiter.peek(self._req_key, rate)

    # -- tokens -----------------------------------------------------------

    def consume_tokens(self, n: int) -> bool:
        """
        Spend *n* tokens if the budget holds them all; else spend none.
        """
        return self.acquire_tokens(n).allowed

    def acquire_tokens(self, n: int) -> Decision:
        """
        Like `consume_tokens`, returning the full decision.
        """
        _check_units(n)
        rate = self._tok_rate
        if rate is None:
            return _UNLIMITED
        return self._take(self._tok_key, rate, n)

    def refund_tokens(self, n: int) -> None:
        """
        Give back *n* tokens (a reservation larger than the real use); the
        budget never rises above its capacity.
        """
        _check_units(n)
        rate = self._tok_rate
        if rate is not None and n:
            self._limiter.settle(None, (self._tok_key, rate, n))

    def deduct_tokens(self, n: int) -> None:
        """
        Charge *n* tokens unconditionally (use beyond a reservation).

        The budget may go into debt; later requests wait until it is repaid.
        """
        _check_units(n)
        rate = self._tok_rate
        if rate is not None and n:
            self._limiter.settle(None, (self._tok_key, rate, -n))

    def token_quota(self) -> Decision:
        """
        The token budget now, without spending any.
        """
        rate = self._tok_rate
        return _UNLIMITED if rate is None else self._limiter.peek(self._tok_key, rate)

    # -- both at once -----------------------------------------------------

    def admit(self, tokens: int) -> Admission:
        """
        Spend one request and reserve *tokens* tokens, atomically.

        Both are taken or neither is: a request refused by the token budget
        keeps its request quota, and the other way round. Concurrent calls
        can never both pass on the same remaining budget. No concurrency
        slot is taken (see `begin_request`).
        """
        _check_units(tokens)
        return self._admission(tokens, None)

    # -- whole requests ---------------------------------------------------

    def begin_request(self, tokens: int) -> Admission:
        """
        Take a concurrency slot, one request and *tokens* tokens: all or none.

        A request refused for concurrency keeps its request and token quota;
        one refused by a quota holds no slot. With a store that has the
        `zerfoo_cloud.stores.protocols.AdmissionStore` fast path this is one
        atomic store call. An allowed request must be finished with one
        `end_request`.
        """
        if type(tokens) is not int or tokens < 0:
            _check_units(tokens)  # raises
        limit = self._record.max_concurrent_requests
        return self._admission(tokens, (self._con_key, limit) if limit else None)

    def end_request(self, reserved: int, used: int) -> None:
        """
        Finish a request admitted by `begin_request`: refund the part of its
        *reserved* tokens it did not use (or charge what it used beyond
        them), and give its concurrency slot back, even if the token update
        fails.
        """
        if (
            type(reserved) is not int
            or type(used) is not int
            or min(reserved, used) < 0
        ):
            _check_units(reserved)  # one of them raises
            _check_units(used)
        tok_rate = self._tok_rate
        bucket = None
        if tok_rate is not None and used != reserved:
            bucket = (self._tok_key, tok_rate, reserved - used)
        slot_key = self._con_key if self._record.max_concurrent_requests else None
        if bucket is None and slot_key is None:
            return
        self._limiter.settle(slot_key, bucket)

    # -- concurrency ------------------------------------------------------

    def allow_concurrent(self) -> bool:
        """
        Take a concurrency slot; ``False`` if all `max_concurrent_requests` are busy.

        Every ``True`` must be paired with one `release_concurrent`.
        """
        limit = self._record.max_concurrent_requests
        if limit == 0:
            return True
        return self._limiter.admit((self._con_key, limit), ())[0]

    def release_concurrent(self) -> None:
        """
        Give back a slot taken by `allow_concurrent`.
        """
        if self._record.max_concurrent_requests:
            self._limiter.settle(self._con_key, None)

    def in_flight(self) -> int:
        """
        How many concurrency slots are taken now.
        """
        return self._limiter.store.slots_in_use(self._con_key)

    # -- models -----------------------------------------------------------

    def model_allowed(self, model: str) -> bool:
        """
        Whether the tenant may use *model* (an empty allow list allows all).
        """
        allow = self._record.model_allow_list
        return not allow or model in allow


_UNLIMITED = Decision(True, 0, 0, 0.0, 0.0)
_ADMITTED = Admission(True, None, None)


def _check_units(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        msg = f"a token count must be an integer, not {n!r}"
        raise InvalidConfigError(msg, field="tokens")
    if n < 0:
        msg = f"a token count must not be negative, not {n}"
        raise InvalidConfigError(msg, field="tokens")


def _check_limit(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an integer, not {value!r}"
        raise InvalidConfigError(msg, field=name)
    if not 0 <= value <= MAX_LIMIT:
        msg = f"{name} must be between 0 (unlimited) and {MAX_LIMIT}, not {value}"
        raise InvalidConfigError(msg, field=name)
    return value


def _check_ttl(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 <= value <= MAX_CACHE_TTL
    ):
        msg = f"cache_ttl must be 0 to {MAX_CACHE_TTL} seconds, not {value!r}"
        raise InvalidConfigError(msg, field="cache_ttl")
    return float(value)


def _check_cache_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"cache_size must be a positive integer, not {value!r}"
        raise InvalidConfigError(msg, field="cache_size")
    return value


def _check_id(tenant_id: object) -> str:
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.fullmatch(tenant_id):
        msg = (
            f"tenant id {tenant_id!r} is invalid: use 1 to 128 letters, digits "
            "and . _ - : @, starting with a letter or digit"
        )
        raise InvalidConfigError(msg, field="id")
    return tenant_id


def _check_key(api_key: object) -> str:
    if not isinstance(api_key, str) or not api_key:
        msg = "the API key must be a non-empty string"
        raise InvalidConfigError(msg, field="api_key")
    if api_key != api_key.strip() or any(c in api_key for c in "\r\n\x00"):
        msg = "the API key must not contain spaces at its ends or control characters"
        raise InvalidConfigError(msg, field="api_key")
    return api_key


def _check_models(models: object) -> tuple[str, ...]:
    if isinstance(models, str) or not isinstance(models, Iterable):
        msg = "model_allow_list must be a list of model names"
        raise InvalidConfigError(msg, field="model_allow_list")
    result = tuple(models)
    if len(result) > MAX_ALLOW_LIST:
        msg = (
            f"model_allow_list holds at most {MAX_ALLOW_LIST} models, not {len(result)}"
        )
        raise InvalidConfigError(msg, field="model_allow_list")
    for m in result:
        if not isinstance(m, str) or not 0 < len(m) <= MAX_MODEL_LENGTH:
            msg = f"model names must be 1 to {MAX_MODEL_LENGTH} characters, not {m!r}"
            raise InvalidConfigError(msg, field="model_allow_list")
    return tuple(dict.fromkeys(result))


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

    Every method but `get_by_api_key` reads the store, so changes made by
    another process sharing it are seen at once. `get_by_api_key` reads it
    for keys it does not know (a new key works at once) and keeps what it
    found for *cache_ttl* seconds: a key re-keyed or deleted by another
    process stops working, and its new limits apply, within that time.
    Changes made through this manager (`update`, `rotate_key`, `delete`)
    apply at once. Methods are safe to call from many threads.

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
    ) -> None:
        if store is None or limits is None:
            store = MemoryTenantStore() if store is None else store
            limits = MemoryLimiterStore() if limits is None else limits
        self.store: TenantStore = store
        self.limits: LimiterStore = limits
        self.clock = clock
        self.key_prefix = key_prefix
        self.limiter = RateLimiter(limits, clock=clock)
        self.cache_ttl = _check_ttl(cache_ttl)
        self.cache_size = _check_cache_size(cache_size)
        # Key hash -> (when it was read, the handle); most recently used last.
        self._cache: collections.OrderedDict[str, tuple[float, Tenant]] = (
            collections.OrderedDict()
        )
        self._cache_lock = threading.Lock()

    def _forget(self) -> None:
        with self._cache_lock:
            self._cache.clear()

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
            id=_check_id(cfg.id),
            key_hash=hash_api_key(_check_key(cfg.api_key)),
            rate_limit=_check_limit("rate_limit", cfg.rate_limit),
            token_budget=_check_limit("token_budget", cfg.token_budget),
            max_concurrent_requests=_check_limit(
                "max_concurrent_requests", cfg.max_concurrent_requests
            ),
            model_allow_list=_check_models(cfg.model_allow_list),
            created_at=now,
            updated_at=now,
        )
        self.store.create(record)
        # Limit state left by an earlier tenant of the same id must not apply.
        self.limits.clear(record.id + "\x00")
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
        if ttl:
            now = self.clock()
            cache = self._cache
            with self._cache_lock:
                hit = cache.get(digest)
                if hit is not None:
                    # A clock that went backwards expires the entry too.
                    if 0.0 <= now - hit[0] < ttl:
                        cache.move_to_end(digest)
                        return hit[1]
                    del cache[digest]
        record = self.store.get_by_key_hash(digest)
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            raise TenantNotFoundError(None)
        tenant = self._tenant(record)
        if ttl:
            with self._cache_lock:
                cache[digest] = (now, tenant)
                if len(cache) > self.cache_size:
                    cache.popitem(last=False)
        return tenant

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
            changes["key_hash"] = hash_api_key(_check_key(api_key))
        if rate_limit is not None:
            changes["rate_limit"] = _check_limit("rate_limit", rate_limit)
        if token_budget is not None:
            changes["token_budget"] = _check_limit("token_budget", token_budget)
        if max_concurrent_requests is not None:
            changes["max_concurrent_requests"] = _check_limit(
                "max_concurrent_requests", max_concurrent_requests
            )
        if model_allow_list is not None:
            changes["model_allow_list"] = _check_models(model_allow_list)
        changes["updated_at"] = self.clock()

        def change(old: TenantRecord) -> TenantRecord:
            if incarnation is not None and old.incarnation != incarnation:
                raise TenantNotFoundError(tenant_id)
            return attrs.evolve(old, **changes)

        try:
            record = self.store.update(tenant_id, change)
        finally:
            self._forget()
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
            self._forget()
        self.limits.clear(tenant_id + "\x00")
