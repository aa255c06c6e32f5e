"""
The `TenantStore` contract, run against every implementation.
"""

from __future__ import annotations

import threading
from typing import Any

import attrs
import pytest

from zerfoo_cloud import InvalidConfigError, TenantExistsError, TenantNotFoundError
from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.stores.protocols import TenantStore
from zerfoo_cloud.tenants import KeyRecord, TenantRecord, hash_api_key


def rec(tenant_id: str, key: str | None = None, **kw: object) -> TenantRecord:
    """
    Build a record for *tenant_id* whose key is *key* (default: derived from the id).
    """
    fields: dict[str, object] = {"rate_limit": 60, "token_budget": 1000}
    fields.update(kw)
    return TenantRecord(
        id=tenant_id,
        key_hash=hash_api_key(key or f"key-{tenant_id}"),
        **fields,  # type: ignore[arg-type]
    )


def test_is_a_tenant_store(tenant_store: TenantStore) -> None:
    """Every implementation satisfies the runtime-checkable protocol."""
    assert isinstance(tenant_store, TenantStore)


def test_create_then_get_by_id_and_hash(tenant_store: TenantStore) -> None:
    """A created record is found by id and by key hash, unchanged."""
    r = rec("acme", model_allow_list=("m1", "m2"), max_concurrent_requests=3)
    tenant_store.create(r)
    assert tenant_store.get("acme") == r
    assert tenant_store.get_by_key_hash(r.key_hash) == r


def test_spend_budgets_are_kept(tenant_store: TenantStore) -> None:
    """Budgets of the tenant and of its keys come back as they were stored, through an update too."""
    monthly = SpendBudget("month", 12_500_000, "EUR", "Europe/Paris", (80,))
    daily = SpendBudget("day", 1, "USD")
    plain = rec("acme")
    key = KeyRecord(
        id="k-0123456789abcdef",
        key_hash=hash_api_key("second"),
        name="ci",
        spend_budgets=(daily,),
    )
    r = attrs.evolve(plain, keys=(*plain.keys, key), spend_budgets=(monthly,))
    tenant_store.create(r)
    assert tenant_store.get("acme") == r
    assert tenant_store.get_by_key_hash(key.key_hash) == r
    lifetime = SpendBudget("lifetime", 2**53 - 1, "EUR")
    changed = tenant_store.update(
        "acme", lambda old: attrs.evolve(old, spend_budgets=(lifetime,))
    )
    assert tenant_store.get("acme") == changed
    assert changed.spend_budgets == (lifetime,)
    assert changed.keys[1].spend_budgets == (daily,)


def test_sign_out_stamps_are_kept(tenant_store: TenantStore) -> None:
    """The tenant's and its people's sign-out stamps survive the store, through an update too."""
    tenant_store.create(rec("acme"))
    changed = tenant_store.update(
        "acme",
        lambda old: attrs.evolve(
            old,
            sessions_not_before=1_700_000_000.25,
            subjects_not_before=(("bob", 1_700_000_001.5), ("alice", 1_700_000_002.0)),
        ),
    )
    assert tenant_store.get("acme") == changed
    assert tenant_store.get_by_key_hash(changed.key_hash) == changed
    assert changed.sessions_valid_from("alice") == 1_700_000_002.0
    assert changed.sessions_valid_from("carol") == 1_700_000_000.25


def test_missing_is_none(tenant_store: TenantStore) -> None:
    """Lookups of absent ids and hashes return None."""
    assert tenant_store.get("nobody") is None
    assert tenant_store.get_by_key_hash(hash_api_key("nope")) is None


def test_duplicate_id_rejected(tenant_store: TenantStore) -> None:
    """A second record with the same id is refused and the first kept."""
    first = rec("acme")
    tenant_store.create(first)
    with pytest.raises(TenantExistsError) as info:
        tenant_store.create(rec("acme", key="other"))
    assert info.value.field == "id"
    assert tenant_store.get("acme") == first
    assert tenant_store.get_by_key_hash(hash_api_key("other")) is None


def test_duplicate_key_rejected(tenant_store: TenantStore) -> None:
    """A record reusing another tenant's key hash is refused and not stored."""
    tenant_store.create(rec("a", key="shared"))
    with pytest.raises(TenantExistsError) as info:
        tenant_store.create(rec("b", key="shared"))
    assert info.value.field == "api_key"
    assert tenant_store.get("b") is None


def test_update_changes_fields_and_key_index(tenant_store: TenantStore) -> None:
    """An update replaces the record and moves the key index in one step."""
    tenant_store.create(rec("acme", key="old"))
    new_hash = hash_api_key("new")
    out = tenant_store.update(
        "acme", lambda r: attrs.evolve(r, key_hash=new_hash, rate_limit=5)
    )
    assert out.rate_limit == 5
    assert tenant_store.get("acme") == out
    assert tenant_store.get_by_key_hash(new_hash) == out
    assert tenant_store.get_by_key_hash(hash_api_key("old")) is None


def test_update_missing_raises(tenant_store: TenantStore) -> None:
    """Updating an absent tenant raises TenantNotFoundError."""
    with pytest.raises(TenantNotFoundError):
        tenant_store.update("ghost", lambda r: r)


def test_update_to_taken_key_rejected(tenant_store: TenantStore) -> None:
    """An update may not take another tenant's key; nothing changes."""
    tenant_store.create(rec("a", key="ka"))
    tenant_store.create(rec("b", key="kb"))
    with pytest.raises(TenantExistsError):
        tenant_store.update("a", lambda r: attrs.evolve(r, key_hash=hash_api_key("kb")))
    assert tenant_store.get_by_key_hash(hash_api_key("ka")) == tenant_store.get("a")
    assert tenant_store.get_by_key_hash(hash_api_key("kb")) == tenant_store.get("b")


def test_update_cannot_change_id(tenant_store: TenantStore) -> None:
    """An update that changes the id is refused."""
    tenant_store.create(rec("a"))
    with pytest.raises(InvalidConfigError):
        tenant_store.update("a", lambda r: attrs.evolve(r, id="b"))
    assert tenant_store.get("b") is None


def test_delete_removes_record_and_key(tenant_store: TenantStore) -> None:
    """A deleted tenant is gone by id and by key; deleting again raises."""
    r = rec("acme")
    tenant_store.create(r)
    tenant_store.delete("acme")
    assert tenant_store.get("acme") is None
    assert tenant_store.get_by_key_hash(r.key_hash) is None
    with pytest.raises(TenantNotFoundError):
        tenant_store.delete("acme")


def test_list_is_ordered_by_id(tenant_store: TenantStore) -> None:
    """list() returns every record ordered by id."""
    for tid in ["m", "a", "z", "b"]:
        tenant_store.create(rec(tid))
    assert [r.id for r in tenant_store.list()] == ["a", "b", "m", "z"]


def test_id_can_be_reused_after_delete(tenant_store: TenantStore) -> None:
    """After delete, the id and the key are free again."""
    tenant_store.create(rec("acme"))
    tenant_store.delete("acme")
    tenant_store.create(rec("acme"))
    assert tenant_store.get("acme") is not None


def test_concurrent_creates_of_one_id_admit_one(tenant_store: TenantStore) -> None:
    """Of many threads creating the same id at once, exactly one succeeds."""
    wins: list[int] = []
    barrier = threading.Barrier(8)

    def create(i: int) -> None:
        barrier.wait()
        try:
            tenant_store.create(rec("race", key=f"k{i}"))
        except TenantExistsError:
            return
        wins.append(i)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(wins) == 1
    stored = tenant_store.get("race")
    assert stored is not None
    assert stored.key_hash == hash_api_key(f"k{wins[0]}")


def test_close_twice_is_harmless(tenant_store: TenantStore) -> None:
    """close() may be called twice."""
    tenant_store.close()
    tenant_store.close()


# -- several keys per tenant --------------------------------------------------


def _key(name: str, **kw: Any) -> KeyRecord:
    """A key record for the key *name* (its id derived from the name)."""
    digest = hash_api_key(name)
    return KeyRecord(
        id="k-" + digest[:16], key_hash=digest, name=name, prefix="zc-" + name[:4], **kw
    )


def _with_keys(record: TenantRecord, *names: str) -> TenantRecord:
    return attrs.evolve(record, keys=(record.keys[0], *(_key(n) for n in names)))


def test_every_key_of_a_tenant_finds_it(tenant_store: TenantStore) -> None:
    """Each key of a tenant, original or added, finds the same record."""
    r = _with_keys(rec("acme", key="first"), "second", "third")
    tenant_store.create(r)
    for name in ("first", "second", "third"):
        assert tenant_store.get_by_key_hash(hash_api_key(name)) == r
    assert tenant_store.get("acme") == r
    assert tenant_store.list() == [r]


def test_keys_added_and_removed_by_update(tenant_store: TenantStore) -> None:
    """An update indexes the keys it adds and drops the ones it removes."""
    tenant_store.create(_with_keys(rec("acme", key="first"), "second"))
    out = tenant_store.update(
        "acme", lambda r: attrs.evolve(r, keys=(r.keys[0], _key("third")))
    )
    assert tenant_store.get_by_key_hash(hash_api_key("third")) == out
    assert tenant_store.get_by_key_hash(hash_api_key("first")) == out
    assert tenant_store.get_by_key_hash(hash_api_key("second")) is None


def test_key_hashes_unique_across_tenants(tenant_store: TenantStore) -> None:
    """No key hash may belong to two tenants: not at creation, not by update;
    a refused write changes nothing."""
    a = _with_keys(rec("a", key="ka"), "shared")
    tenant_store.create(a)
    with pytest.raises(TenantExistsError) as info:
        tenant_store.create(_with_keys(rec("b", key="kb"), "shared"))
    assert info.value.field == "api_key"
    assert tenant_store.get("b") is None
    assert tenant_store.get_by_key_hash(hash_api_key("kb")) is None
    tenant_store.create(rec("b", key="kb"))
    before = tenant_store.get("b")
    with pytest.raises(TenantExistsError) as info:
        tenant_store.update("b", lambda r: _with_keys(r, "fresh", "shared"))
    assert info.value.field == "api_key"
    assert tenant_store.get("b") == before
    assert tenant_store.get_by_key_hash(hash_api_key("fresh")) is None
    assert tenant_store.get_by_key_hash(hash_api_key("shared")) == a


def test_delete_drops_every_key(tenant_store: TenantStore) -> None:
    """Deleting a tenant frees all its keys' hashes for another tenant."""
    tenant_store.create(_with_keys(rec("a", key="ka"), "k2", "k3"))
    tenant_store.delete("a")
    for name in ("ka", "k2", "k3"):
        assert tenant_store.get_by_key_hash(hash_api_key(name)) is None
    again = _with_keys(rec("b", key="k2"), "k3", "ka")
    tenant_store.create(again)
    assert tenant_store.get_by_key_hash(hash_api_key("ka")) == again


def test_key_records_round_trip(tenant_store: TenantStore) -> None:
    """Expiry, revocation and scope of every key are stored exactly."""
    r = attrs.evolve(
        rec("acme", key="first"),
        keys=(
            rec("acme", key="first").keys[0],
            _key("exp", expires_at=1_700_000_000.5, model_scope=("m1",)),
            _key("gone", revoked_at=1_600_000_000.0),
        ),
    )
    tenant_store.create(r)
    got = tenant_store.get_by_key_hash(hash_api_key("gone"))
    assert got == r
    assert got is not None
    assert got.key_by_id(_key("exp").id) == _key(
        "exp", expires_at=1_700_000_000.5, model_scope=("m1",)
    )
