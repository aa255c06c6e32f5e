"""
TenantManager and Tenant: the public API, validation, keys and limits.
"""

from __future__ import annotations

import re
import threading

import pytest

from tests.conftest import FakeClock
from zerfoo_cloud import (
    InvalidConfigError,
    TenantConfig,
    TenantExistsError,
    TenantManager,
    TenantNotFoundError,
    generate_api_key,
    hash_api_key,
)
from zerfoo_cloud.limits import MAX_LIMIT
from zerfoo_cloud.metering import MAX_MODEL_LENGTH
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.tenants import (
    API_KEY_PREFIX,
    MAX_ALLOW_LIST,
    REDACTED,
)


@pytest.fixture(params=["memory", "lmdb"])
def manager(
    request: pytest.FixtureRequest, clock: FakeClock, lmdb_stores: LMDBStores
) -> TenantManager:
    """
    A manager over memory stores and one over LMDB stores.
    """
    if request.param == "memory":
        return TenantManager(clock=clock)
    return TenantManager(lmdb_stores.tenants, limits=lmdb_stores.limits, clock=clock)


def cfg(
    tenant_id: str = "acme", key: str = "secret-key-1", **kw: object
) -> TenantConfig:
    """
    A config with generous defaults.
    """
    fields: dict[str, object] = {"rate_limit": 60, "token_budget": 10_000}
    fields.update(kw)
    return TenantConfig(tenant_id, key, **fields)  # type: ignore[arg-type]


def test_generated_keys_are_prefixed_and_unique() -> None:
    """Generated keys carry the prefix and 256 random bits."""
    keys = {generate_api_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith(API_KEY_PREFIX)
        assert re.fullmatch(r"zc-[A-Za-z0-9_-]{43}", key)
    assert generate_api_key("sk-x-").startswith("sk-x-")


def test_create_get_and_lookup_by_key(manager: TenantManager) -> None:
    """A created tenant is found by id and by key, with the seed's fields."""
    created = manager.create(
        cfg(max_concurrent_requests=2, model_allow_list=["a", "b"])
    )
    assert created.id == "acme"
    by_key = manager.get_by_api_key("secret-key-1")
    assert by_key.id == "acme"
    assert manager.get("acme").config() == TenantConfig(
        "acme", REDACTED, 60, 10_000, 2, ("a", "b")
    )


def test_keys_are_never_shown(manager: TenantManager) -> None:
    """Neither the config repr, the tenant repr nor the record holds the raw key."""
    key = generate_api_key()
    config = cfg(key=key)
    tenant = manager.create(config)
    for text in (
        repr(config),
        str(config),
        repr(tenant),
        repr(tenant.record),
        repr(tenant.config()),
    ):
        assert key not in text
    assert tenant.config().api_key == REDACTED
    assert tenant.record.key_hash == hash_api_key(key)


def test_unknown_key_and_id(manager: TenantManager) -> None:
    """Unknown keys and ids raise TenantNotFoundError; key errors carry no key."""
    manager.create(cfg())
    with pytest.raises(TenantNotFoundError) as info:
        manager.get_by_api_key("wrong")
    assert info.value.tenant_id is None
    assert "wrong" not in str(info.value)
    with pytest.raises(TenantNotFoundError):
        manager.get_by_api_key("")
    with pytest.raises(TenantNotFoundError):
        manager.get("ghost")


def test_duplicates_rejected(manager: TenantManager) -> None:
    """Duplicate ids and duplicate keys raise TenantExistsError."""
    manager.create(cfg())
    with pytest.raises(TenantExistsError):
        manager.create(cfg(key="another-key"))
    with pytest.raises(TenantExistsError):
        manager.create(cfg("other"))


@pytest.mark.parametrize(
    "bad_id", ["", " acme", "-acme", "a/b", "a b", "a\x00b", "é", "a" * 129]
)
def test_bad_ids_rejected(manager: TenantManager, bad_id: str) -> None:
    """Empty and malformed ids raise InvalidConfigError."""
    with pytest.raises(InvalidConfigError):
        manager.create(cfg(bad_id))


def test_id_length_limit(manager: TenantManager) -> None:
    """An id of 128 characters is accepted; 129 is not."""
    manager.create(cfg("a" * 128))
    with pytest.raises(InvalidConfigError):
        manager.create(cfg("b" * 129, key="k2"))


@pytest.mark.parametrize("bad_key", ["", " key", "key\n", "k\x00"])
def test_bad_keys_rejected(manager: TenantManager, bad_key: str) -> None:
    """Empty keys and keys with edge spaces or control characters are refused."""
    with pytest.raises(InvalidConfigError):
        manager.create(cfg(key=bad_key))


@pytest.mark.parametrize(
    "field", ["rate_limit", "token_budget", "max_concurrent_requests"]
)
@pytest.mark.parametrize("bad", [-1, MAX_LIMIT + 1, 1.5, True, "10"])
def test_bad_limits_rejected(manager: TenantManager, field: str, bad: object) -> None:
    """Negative, huge, fractional, boolean and string limits are refused."""
    with pytest.raises(InvalidConfigError) as info:
        manager.create(cfg("acme", "secret-key-1", **{field: bad}))
    assert info.value.field == field


@pytest.mark.parametrize(
    "field", ["rate_limit", "token_budget", "max_concurrent_requests"]
)
def test_limit_bounds_accepted(manager: TenantManager, field: str) -> None:
    """0 (unlimited) and MAX_LIMIT are accepted."""
    manager.create(cfg("zero", key="k0", **{field: 0}))
    manager.create(cfg("max", key="k1", **{field: MAX_LIMIT}))


def test_allow_list_limits(manager: TenantManager) -> None:
    """Allow lists of MAX_ALLOW_LIST names of MAX_MODEL_LENGTH chars pass; one more fails."""
    manager.create(
        cfg("a", key="k1", model_allow_list=[f"m{i}" for i in range(MAX_ALLOW_LIST)])
    )
    with pytest.raises(InvalidConfigError):
        manager.create(
            cfg(
                "b",
                key="k2",
                model_allow_list=[f"m{i}" for i in range(MAX_ALLOW_LIST + 1)],
            )
        )
    manager.create(cfg("c", key="k3", model_allow_list=["x" * MAX_MODEL_LENGTH]))
    with pytest.raises(InvalidConfigError):
        manager.create(
            cfg("d", key="k4", model_allow_list=["x" * (MAX_MODEL_LENGTH + 1)])
        )
    with pytest.raises(InvalidConfigError):
        manager.create(cfg("e", key="k5", model_allow_list=[""]))
    with pytest.raises(InvalidConfigError):
        manager.update("a", model_allow_list="gpt-4")  # a bare string, not a list


def test_model_allow_list(manager: TenantManager) -> None:
    """An empty list allows every model; a list allows only its models."""
    everyone = manager.create(cfg("a", key="k1"))
    some = manager.create(cfg("b", key="k2", model_allow_list=["llama", "llama"]))
    assert everyone.model_allowed("anything")
    assert some.model_allowed("llama")
    assert not some.model_allowed("gpt-4")
    assert some.config().model_allow_list == ("llama",)


def test_update_every_field(manager: TenantManager, clock: FakeClock) -> None:
    """update() changes each field but the id; None keeps a field."""
    manager.create(cfg())
    clock.advance(5)
    t = manager.update(
        "acme",
        api_key="new-key",
        rate_limit=1,
        token_budget=2,
        max_concurrent_requests=3,
        model_allow_list=["m"],
    )
    assert t.config() == TenantConfig("acme", REDACTED, 1, 2, 3, ("m",))
    assert t.record.updated_at == clock.now
    assert t.record.created_at == clock.now - 5
    assert manager.get_by_api_key("new-key").id == "acme"
    with pytest.raises(TenantNotFoundError):
        manager.get_by_api_key("secret-key-1")
    assert manager.update("acme").config() == t.config()
    with pytest.raises(TenantNotFoundError):
        manager.update("ghost", rate_limit=1)
    with pytest.raises(InvalidConfigError):
        manager.update("acme", rate_limit=-1)


def test_rotate_key(manager: TenantManager) -> None:
    """rotate_key issues a working key and the old key stops at once."""
    manager.create(cfg())
    new = manager.rotate_key("acme")
    assert new.startswith(API_KEY_PREFIX)
    assert manager.get_by_api_key(new).id == "acme"
    with pytest.raises(TenantNotFoundError):
        manager.get_by_api_key("secret-key-1")
    with pytest.raises(TenantNotFoundError):
        manager.rotate_key("ghost")


def test_delete(manager: TenantManager) -> None:
    """A deleted tenant's key stops working and its limit state is dropped."""
    t = manager.create(cfg(rate_limit=1))
    assert t.allow_request()
    manager.delete("acme")
    with pytest.raises(TenantNotFoundError):
        manager.get_by_api_key("secret-key-1")
    with pytest.raises(TenantNotFoundError):
        manager.delete("acme")
    again = manager.create(cfg(rate_limit=1))
    assert again.allow_request(), "a re-created tenant starts with a full quota"


def test_list_is_redacted_and_ordered(manager: TenantManager) -> None:
    """list() returns redacted configs ordered by id; records() keeps hashes."""
    manager.create(cfg("b", key="kb"))
    manager.create(cfg("a", key="ka"))
    assert [c.id for c in manager.list()] == ["a", "b"]
    assert all(c.api_key == REDACTED for c in manager.list())
    assert [r.key_hash for r in manager.records()] == [
        hash_api_key("ka"),
        hash_api_key("kb"),
    ]


def test_request_rate_at_and_past_the_limit(
    manager: TenantManager, clock: FakeClock
) -> None:
    """rate_limit requests pass in a burst; the next waits for the refill."""
    t = manager.create(cfg(rate_limit=5))
    assert [t.allow_request() for _ in range(6)] == [True] * 5 + [False]
    d = t.acquire_request()
    assert d.retry_after == pytest.approx(12.0)
    clock.advance(12)
    assert t.allow_request()
    assert t.request_quota().remaining == 0


def test_unlimited_quotas(manager: TenantManager) -> None:
    """Limits of 0 never refuse."""
    t = manager.create(cfg(rate_limit=0, token_budget=0))
    assert all(t.allow_request() for _ in range(1000))
    assert t.consume_tokens(10**12)
    assert t.admit(10**9).allowed
    assert t.allow_concurrent()
    t.release_concurrent()
    t.deduct_tokens(5)
    t.refund_tokens(5)
    assert t.token_quota().allowed


def test_tokens_all_or_nothing_refund_and_debt(
    manager: TenantManager, clock: FakeClock
) -> None:
    """Token spending is all or nothing, refunds cap, deductions make debt."""
    t = manager.create(cfg(token_budget=600))
    assert not t.consume_tokens(601)
    assert t.consume_tokens(600)
    assert not t.consume_tokens(1)
    t.refund_tokens(10_000)
    assert t.token_quota().remaining == 600
    t.deduct_tokens(900)  # 300 in debt
    d = t.acquire_tokens(1)
    assert not d.allowed
    assert d.retry_after == pytest.approx(30.1)
    clock.advance(30.1)
    assert t.consume_tokens(1)
    with pytest.raises(InvalidConfigError):
        t.consume_tokens(-1)
    with pytest.raises(InvalidConfigError):
        t.refund_tokens(-1)
    with pytest.raises(InvalidConfigError):
        t.deduct_tokens(-1)


def test_admit_takes_both_or_neither(manager: TenantManager) -> None:
    """A request refused by the token budget keeps its request quota, and vice versa."""
    t = manager.create(cfg(rate_limit=2, token_budget=100))
    refused = t.admit(101)
    assert not refused.allowed
    assert refused.refused_by == "tokens"
    assert refused.retry_after == float("inf")
    assert t.request_quota().remaining == 2
    assert t.admit(50).allowed
    assert t.admit(50).allowed
    refused = t.admit(0)
    assert refused.refused_by == "requests"
    assert refused.retry_after > 0
    assert t.token_quota().remaining == 0
    ok = manager.create(cfg("b", key="kb", rate_limit=1, token_budget=0)).admit(5)
    assert ok.allowed
    assert ok.tokens is None
    assert ok.refused_by is None
    assert ok.retry_after == 0.0


def test_concurrency_at_and_past_the_limit(manager: TenantManager) -> None:
    """max_concurrent_requests slots are granted; the next is refused until release."""
    t = manager.create(cfg(max_concurrent_requests=2))
    assert t.allow_concurrent()
    assert manager.get("acme").allow_concurrent()
    assert not t.allow_concurrent()
    assert t.in_flight() == 2
    t.release_concurrent()
    assert t.in_flight() == 1
    assert t.allow_concurrent()


def test_changed_limits_apply_to_the_next_request(manager: TenantManager) -> None:
    """After update(), fresh handles enforce the new limit."""
    manager.create(cfg(rate_limit=100))
    manager.update("acme", rate_limit=1)
    t = manager.get("acme")
    assert t.allow_request()
    assert not t.allow_request()


def test_eight_threads_admit_exactly_the_quota(manager: TenantManager) -> None:
    """8 threads hammering one tenant get exactly rate_limit requests through."""
    manager.create(cfg(rate_limit=500))
    results: list[int] = []
    barrier = threading.Barrier(8)
    lock = threading.Lock()

    def hammer() -> None:
        tenant = manager.get_by_api_key("secret-key-1")
        barrier.wait()
        n = sum(tenant.allow_request() for _ in range(200))
        with lock:
            results.append(n)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert sum(results) == 500
