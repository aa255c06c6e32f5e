"""
Several API keys per tenant through `TenantManager`: creation, expiry (at
the limit and just past it, with an injected clock), model scope, rotation
with a grace period, revocation, tenants from before keys, hostile input,
and secrets kept out of every repr and listing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import FakeClock
from zerfoo_cloud import (
    InvalidConfigError,
    KeyNotFoundError,
    TenantConfig,
    TenantManager,
    TenantNotFoundError,
)
from zerfoo_cloud.key_records import (
    MAX_KEY_NAME_LENGTH,
    MAX_KEYS_PER_TENANT,
    KeyRecord,
    key_from_dict,
    visible_prefix,
)
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import (
    MemoryKeyRevocations,
    MemoryLimiterStore,
    MemoryTenantStore,
)
from zerfoo_cloud.stores.open import open_stores
from zerfoo_cloud.tenant_records import TenantRecord, hash_api_key
from zerfoo_cloud.tenants.key_checks import MAX_GRACE, MAX_KEY_LIFETIME

T0 = 1_800_000_000.0
ORIGINAL = "zc-original-key-0123456789"


@pytest.fixture
def clock() -> FakeClock:
    """The clock every manager of a test shares."""
    return FakeClock(T0)


@pytest.fixture
def manager(clock: FakeClock) -> TenantManager:
    """A manager holding acme (models m1 and m2), read through no cache."""
    m = TenantManager(clock=clock, cache_ttl=0)
    m.create(
        TenantConfig(
            "acme",
            ORIGINAL,
            rate_limit=0,
            token_budget=0,
            model_allow_list=("m1", "m2"),
        )
    )
    return m


def test_a_new_tenant_has_its_key_as_first_key(manager: TenantManager) -> None:
    """The key a tenant is created with is its first key, named by its hash."""
    (first,) = manager.list_keys("acme")
    assert first.id == hash_api_key(ORIGINAL)[:8]
    assert first.name == "default"
    assert first.prefix == "zc-orig"
    assert first.state(T0) == "active"
    assert manager.get_by_api_key(ORIGINAL).key_id == first.id


def test_created_keys_work_beside_the_first(manager: TenantManager) -> None:
    """A key made by create_key works at once; the first key keeps working."""
    secret, key = manager.create_key("acme", name="ci")
    assert secret.startswith("zc-")
    assert key.prefix == visible_prefix(secret)
    assert key.prefix == secret[:7]
    assert key.id.startswith("k-")
    assert key.key_hash == hash_api_key(secret)
    tenant = manager.get_by_api_key(secret)
    assert tenant.id == "acme"
    assert tenant.key == key
    assert manager.get_by_api_key(ORIGINAL).key_id != key.id
    assert [k.id for k in manager.list_keys("acme")][1:] == [key.id]


def test_expiry_at_the_limit_and_just_past(
    manager: TenantManager, clock: FakeClock
) -> None:
    """A key works until the instant before its expiry and never from it on."""
    secret, _ = manager.create_key("acme", name="short", expires_at=T0 + 60)
    clock.now = math.nextafter(T0 + 60, 0)
    assert manager.get_by_api_key(secret).id == "acme"
    clock.now = T0 + 60
    with pytest.raises(TenantNotFoundError) as info:
        manager.get_by_api_key(secret)
    assert info.value.tenant_id is None
    clock.now = T0 + 61
    with pytest.raises(TenantNotFoundError):
        manager.get_by_api_key(secret)
    assert manager.get_by_api_key(ORIGINAL).id == "acme"


def test_expiry_holds_for_a_cached_key(clock: FakeClock) -> None:
    """A key found and cached stops working at its expiry, cache or not."""
    m = TenantManager(clock=clock, cache_ttl=1.0)
    m.create(TenantConfig("acme", ORIGINAL, rate_limit=0, token_budget=0))
    secret, _ = m.create_key("acme", name="cached", expires_at=T0 + 0.5)
    assert m.get_by_api_key(secret).id == "acme"
    assert m.cached_by_api_key(secret) is not None
    clock.now = T0 + 0.5
    assert m.cached_by_api_key(secret) is None
    with pytest.raises(TenantNotFoundError):
        m.get_by_api_key(secret)


@pytest.mark.parametrize(
    "expires_at",
    [
        T0,
        T0 - 1,
        T0 + MAX_KEY_LIFETIME + 1,
        1e308,
        math.inf,
        math.nan,
        -math.inf,
        True,
        "tomorrow",
    ],
)
def test_absurd_expiries_are_refused(
    manager: TenantManager, expires_at: object
) -> None:
    """An expiry in the past, now, too far away or not a number changes nothing."""
    with pytest.raises(InvalidConfigError) as info:
        manager.create_key("acme", name="x", expires_at=expires_at)  # type: ignore[arg-type]
    assert info.value.field == "expires_at"
    assert len(manager.list_keys("acme")) == 1


def test_the_furthest_expiry_is_accepted(manager: TenantManager) -> None:
    """An expiry exactly MAX_KEY_LIFETIME away is accepted."""
    _, key = manager.create_key("acme", name="x", expires_at=T0 + MAX_KEY_LIFETIME)
    assert key.expires_at == T0 + MAX_KEY_LIFETIME


@pytest.mark.parametrize(
    "name",
    [
        "",
        " padded",
        "bell\x07",
        "line\nbreak",
        "nul\x00",
        "esc\x1b[31m",
        "trailing ",
        "caf\u00e9",
        "rtl\u202eevil",
        "zero\u200bwidth",
        "x" * (MAX_KEY_NAME_LENGTH + 1),
        "x" * 10_000_000,
        None,
        42,
    ],
)
def test_hostile_names_are_refused(manager: TenantManager, name: object) -> None:
    """Names with control characters, empty, too long or not strings: refused, one short line."""
    with pytest.raises(InvalidConfigError) as info:
        manager.create_key("acme", name=name)  # type: ignore[arg-type]
    assert info.value.field == "name"
    assert len(str(info.value)) < 200
    assert "\n" not in str(info.value)
    assert len(manager.list_keys("acme")) == 1


def test_the_longest_name_is_accepted(manager: TenantManager) -> None:
    """A name of exactly MAX_KEY_NAME_LENGTH characters, spaces inside, is kept."""
    name = "a" + (" -~" * MAX_KEY_NAME_LENGTH)[: MAX_KEY_NAME_LENGTH - 2] + "z"
    assert len(name) == MAX_KEY_NAME_LENGTH
    _, key = manager.create_key("acme", name=name)
    assert manager.list_keys("acme")[-1].name == name == key.name


def test_scope_must_lie_within_the_allow_list(manager: TenantManager) -> None:
    """A scope naming a model the tenant may not use is refused."""
    with pytest.raises(InvalidConfigError) as info:
        manager.create_key("acme", name="x", model_scope=("m1", "m3"))
    assert info.value.field == "model_scope"
    _, key = manager.create_key("acme", name="x", model_scope=("m2",))
    tenant = manager.get_by_api_key(
        manager.create_key("acme", name="y", model_scope=["m2"])[0]
    )
    assert key.model_scope == ("m2",)
    assert tenant.model_allowed("m2")
    assert not tenant.model_allowed("m1")
    assert tenant.model_limited()
    assert manager.get_by_api_key(ORIGINAL).model_allowed("m1")


def test_rotation_with_grace(manager: TenantManager, clock: FakeClock) -> None:
    """Both keys work until the grace ends; then only the new one."""
    old_secret, old = manager.create_key("acme", name="ci", model_scope=("m1",))
    new_secret, new, retired = manager.rotate_api_key("acme", old.id, grace=3600)
    assert new.name == "ci"
    assert new.model_scope == ("m1",)
    assert retired.id == old.id
    assert retired.expires_at == T0 + 3600
    clock.now = math.nextafter(T0 + 3600, 0)
    assert manager.get_by_api_key(old_secret).key_id == old.id
    assert manager.get_by_api_key(new_secret).key_id == new.id
    clock.now = T0 + 3600
    with pytest.raises(TenantNotFoundError):
        manager.get_by_api_key(old_secret)
    assert manager.get_by_api_key(new_secret).key_id == new.id
    # A key past its grace cannot be rotated again.
    with pytest.raises(KeyNotFoundError):
        manager.rotate_api_key("acme", old.id)


def test_rotation_without_grace_revokes_at_once(manager: TenantManager) -> None:
    """Grace 0 (the default) revokes the old key in the same step."""
    first = manager.list_keys("acme")[0]
    new_secret, new, retired = manager.rotate_api_key("acme", first.id)
    assert retired.revoked_at == T0
    with pytest.raises(TenantNotFoundError):
        manager.get_by_api_key(ORIGINAL)
    assert manager.get_by_api_key(new_secret).key_id == new.id
    assert manager.list_keys("acme")[0].state(T0) == "revoked"


def test_rotation_keeps_an_earlier_expiry(manager: TenantManager) -> None:
    """A grace longer than the key's own life does not extend it."""
    _, key = manager.create_key("acme", name="x", expires_at=T0 + 10)
    _, new, retired = manager.rotate_api_key("acme", key.id, grace=3600)
    assert retired.expires_at == T0 + 10
    assert new.expires_at == T0 + 10


@pytest.mark.parametrize("grace", [-1, MAX_GRACE + 1, math.inf, math.nan, True, "1h"])
def test_bad_graces_are_refused(manager: TenantManager, grace: object) -> None:
    """A grace out of range changes nothing."""
    first = manager.list_keys("acme")[0]
    with pytest.raises(InvalidConfigError) as info:
        manager.rotate_api_key("acme", first.id, grace=grace)  # type: ignore[arg-type]
    assert info.value.field == "grace"
    assert manager.list_keys("acme") == [first]


def test_revocation(manager: TenantManager, clock: FakeClock) -> None:
    """A revoked key stops at once, the others keep working; revoking again changes nothing."""
    secret, key = manager.create_key("acme", name="x")
    revoked = manager.revoke_key("acme", key.id)
    assert revoked.revoked_at == T0
    with pytest.raises(TenantNotFoundError):
        manager.get_by_api_key(secret)
    assert manager.get_by_api_key(ORIGINAL).id == "acme"
    clock.now = T0 + 5
    assert manager.revoke_key("acme", key.id).revoked_at == T0


def test_unknown_keys_and_tenants(manager: TenantManager) -> None:
    """Unknown key ids and tenants are named errors."""
    with pytest.raises(KeyNotFoundError) as info:
        manager.revoke_key("acme", "k-0000000000000000")
    assert info.value.key_id == "k-0000000000000000"
    with pytest.raises(TenantNotFoundError):
        manager.create_key("ghost", name="x")
    with pytest.raises(TenantNotFoundError):
        manager.list_keys("ghost")


def test_the_number_of_keys_is_bounded(manager: TenantManager) -> None:
    """At the most keys that work, one more is refused; a revoked one makes room."""
    made = [
        manager.create_key("acme", name=f"k{i}")[1]
        for i in range(MAX_KEYS_PER_TENANT - 1)
    ]
    with pytest.raises(InvalidConfigError) as info:
        manager.create_key("acme", name="one-too-many")
    assert info.value.field == "keys"
    manager.revoke_key("acme", made[0].id)
    _, extra = manager.create_key("acme", name="room")
    ids = [k.id for k in manager.list_keys("acme")]
    assert made[0].id not in ids
    assert extra.id in ids
    assert len(ids) == MAX_KEYS_PER_TENANT


def test_rotating_the_tenant_key_replaces_the_first_key(
    manager: TenantManager,
) -> None:
    """The tenant-wide rotate_key replaces only the first key; others keep working."""
    other, key = manager.create_key("acme", name="x")
    new = manager.rotate_key("acme")
    with pytest.raises(TenantNotFoundError):
        manager.get_by_api_key(ORIGINAL)
    first = manager.list_keys("acme")[0]
    assert first.id == hash_api_key(new)[:8]
    assert first.name == "default"
    assert manager.get_by_api_key(new).key_id == first.id
    assert manager.get_by_api_key(other).key_id == key.id


def test_secrets_never_in_reprs_or_records(manager: TenantManager) -> None:
    """Neither the key nor its hash shows in reprs; listings carry hashes only."""
    secret, key = manager.create_key("acme", name="x")
    tenant = manager.get_by_api_key(secret)
    for text in (
        repr(key),
        repr(tenant),
        repr(tenant.record),
        str(manager.list_keys("acme")),
    ):
        assert secret not in text
        assert secret[7:] not in text
        assert key.key_hash not in text
    assert secret not in tenant.record.to_bytes().decode()


def test_a_short_key_is_never_stored_or_listed_whole(clock: FakeClock) -> None:
    """
    A key an operator chose, short or with a dash early on, keeps at least
    16 characters hidden: its prefix never holds the whole key (or nearly),
    neither at rest nor in a listing.
    """
    store = MemoryTenantStore()
    manager = TenantManager(store, clock=clock, cache_ttl=0)
    for tenant_id, key in (("dash", "abcdefgh-ijkl"), ("plain", "abcd")):
        manager.create(TenantConfig(tenant_id, key, rate_limit=0, token_budget=0))
        (first,) = manager.list_keys(tenant_id)
        assert first.prefix == ""
        record = store.get(tenant_id)
        assert record is not None
        assert key.encode() not in record.to_bytes()
        assert key[:4] not in str([k.view(T0) for k in manager.list_keys(tenant_id)])
        assert manager.get_by_api_key(key).id == tenant_id


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("zc-" + "A" * 20, "zc-AAAA"),  # 16 hidden: at the limit
        ("zc-" + "A" * 19, "zc-AAA"),  # one character shorter: one less shown
        ("zc-" + "A" * 13, ""),  # 16 characters: nothing shown
        ("x" * 20, "xxxx"),  # no dash: four shown, 16 hidden
        ("x" * 19, "xxx"),
    ],
)
def test_visible_prefix_leaves_16_characters_hidden(key: str, shown: str) -> None:
    """The prefix leaves at least 16 characters of any key hidden."""
    assert visible_prefix(key) == shown
    assert len(key) - len(visible_prefix(key)) >= 16


# -- stored forms ---------------------------------------------------------------


def _old_record_bytes(tenant_id: str, key: str) -> bytes:
    # A record exactly as stored before tenants had several keys.
    return json.dumps(
        {
            "v": 1,
            "id": tenant_id,
            "key_hash": hash_api_key(key),
            "rate_limit": 5,
            "token_budget": 100,
            "max_concurrent_requests": 0,
            "model_allow_list": [],
            "created_at": 1_700_000_000.0,
            "updated_at": 1_700_000_000.0,
            "incarnation": "0" * 32,
        },
        separators=(",", ":"),
    ).encode()


def test_old_records_decode_with_their_key_as_first_key() -> None:
    """A record from before keys decodes, its key the first, and encodes back byte for byte."""
    raw = _old_record_bytes("acme", "legacy-key")
    record = TenantRecord.from_bytes(raw)
    (key,) = record.keys
    assert key.id == hash_api_key("legacy-key")[:8]
    assert key.key_hash == record.key_hash
    assert key.created_at == 1_700_000_000.0
    assert record.to_bytes() == raw


def test_old_lmdb_records_keep_working(tmp_path: Path, clock: FakeClock) -> None:
    """An LMDB file holding a tenant in the old format: its key works, and new keys can be added."""
    with LMDBStores.open(tmp_path / "db") as stores:
        env = stores.tenants._env

        def write(txn: Any) -> None:
            txn.put(
                b"acme",
                _old_record_bytes("acme", "legacy-key"),
                db=env.handles()["tenants"],
            )
            txn.put(
                hash_api_key("legacy-key").encode(),
                b"acme",
                db=env.handles()["tenant_keys"],
            )

        env.write(write)
        m = TenantManager(
            stores.tenants, limits=stores.limits, clock=clock, cache_ttl=0
        )
        assert m.get_by_api_key("legacy-key").id == "acme"
        secret, key = m.create_key("acme", name="new")
        assert m.get_by_api_key(secret).key_id == key.id
        assert m.get_by_api_key("legacy-key").key_id == hash_api_key("legacy-key")[:8]


@pytest.mark.parametrize(
    "keys",
    [
        "not a list",
        [],
        [{"id": "k-0123456789abcdef"}],
        [
            {
                "id": "../x",
                "key_hash": "0" * 64,
                "name": "",
                "prefix": "",
                "created_at": 0,
            }
        ],
        [
            {
                "id": "k-0123456789abcdef",
                "key_hash": "z" * 64,
                "name": "",
                "prefix": "",
                "created_at": 0,
            }
        ],
        [
            {
                "id": "k-0123456789abcdef",
                "key_hash": "0" * 64,
                "name": "",
                "prefix": "",
                "created_at": 0,
                "expires_at": "soon",
            }
        ],
    ],
)
def test_corrupt_key_lists_are_refused(keys: object) -> None:
    """A stored key list that is not one, or whose first key is not key_hash's, is a ValueError."""
    data = json.loads(_old_record_bytes("acme", "k"))
    data["keys"] = keys
    with pytest.raises(ValueError, match="key"):
        TenantRecord.from_bytes(json.dumps(data).encode())


def test_a_first_key_other_than_key_hash_is_refused() -> None:
    """The stored first key must be the one key_hash names."""
    data = json.loads(_old_record_bytes("acme", "k"))
    data["keys"] = [KeyRecord(id="k-0123456789abcdef", key_hash="0" * 64).to_dict()]
    with pytest.raises(ValueError, match="first key"):
        TenantRecord.from_bytes(json.dumps(data).encode())


def test_key_records_round_trip() -> None:
    """Every field of a key survives its stored form."""
    key = KeyRecord(
        id="k-0123456789abcdef",
        key_hash="a" * 64,
        name="ci \u2013 deploy",
        prefix="zc-AbC1",
        created_at=1.5,
        expires_at=2.5,
        revoked_at=3.5,
        model_scope=("m1", "m2"),
        rate_limit=60,
        token_budget=2**53,
        max_concurrent_requests=1,
    )
    assert key_from_dict(json.loads(json.dumps(key.to_dict()))) == key


# -- another process --------------------------------------------------------------


class _Child:
    """A process looking keys up in the same LMDB store."""

    def __init__(self, path: Path, counters: str | None = None) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests._key_child",
                str(path),
                *([counters] if counters else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self.ask_line() == "ready"

    def ask_line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def ask(self, key: str, command: str = "") -> str:
        """The child's answer for *key*: ``ok KEY_ID`` or ``refused`` (see tests._key_child for *command*)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command} {key}".strip() + "\n")
        self.proc.stdin.flush()
        return self.ask_line()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(10) == 0
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def test_rotation_grace_and_revocation_in_another_process(tmp_path: Path) -> None:
    """Another process sharing the store: both keys work during the grace, then only the new one; a revoked key stops within the cache time."""
    path = tmp_path / "db"
    with LMDBStores.open(path) as stores:
        m = TenantManager(stores.tenants, limits=stores.limits)
        m.create(TenantConfig("acme", ORIGINAL, rate_limit=0, token_budget=0))
        old_secret, old = m.create_key("acme", name="ci")
        child = _Child(path)
        try:
            assert child.ask(old_secret) == f"ok {old.id}"  # now cached there
            new_secret, new, retired = m.rotate_api_key("acme", old.id, grace=1.5)
            assert retired.expires_at is not None
            assert child.ask(new_secret) == f"ok {new.id}"
            while time.time() < retired.expires_at - 0.3:
                assert child.ask(old_secret) == f"ok {old.id}"
                time.sleep(0.1)
            while time.time() < retired.expires_at + 0.05:
                time.sleep(0.05)
            assert child.ask(old_secret) == "refused"
            assert child.ask(new_secret) == f"ok {new.id}"
            # Revocation: refused there once its cache time (0.5 s) is past.
            m.revoke_key("acme", new.id)
            time.sleep(0.6)
            assert child.ask(new_secret) == "refused"
            assert child.ask(ORIGINAL).startswith("ok ")
        finally:
            child.close()


@pytest.mark.redis
def test_rotation_grace_and_revocation_in_another_process_with_redis_counters(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Counters and revocations in Redis, keys cached a second in the other process: the grace ends there on time, and a revocation's message refuses the key well within the cache time."""
    path = tmp_path / "db"
    counters = f"{redis_url}?prefix={redis_prefix}"
    with open_stores(str(path), counters) as stores:
        m = TenantManager(
            stores.tenants, limits=stores.limits, revocations=stores.revocations
        )
        m.create(TenantConfig("acme", ORIGINAL, rate_limit=0, token_budget=0))
        old_secret, old = m.create_key("acme", name="ci")
        child = _Child(path, counters)
        try:
            assert child.ask(old_secret) == f"ok {old.id}"  # cached there
            new_secret, new, retired = m.rotate_api_key("acme", old.id, grace=1.0)
            assert retired.expires_at is not None
            assert child.ask(new_secret) == f"ok {new.id}"
            assert child.ask(old_secret) == f"ok {old.id}"
            while time.time() < retired.expires_at + 0.05:
                time.sleep(0.05)
            assert child.ask(old_secret) == "refused"
            assert child.ask(new_secret) == f"ok {new.id}"
            assert child.ask(new_secret) == f"ok {new.id}"  # cached for 1 s
            m.revoke_key("acme", new.id)
            deadline = time.monotonic() + 0.5
            while child.ask(new_secret) != "refused":
                assert time.monotonic() < deadline, "the revocation never arrived"
                time.sleep(0.01)
            assert child.ask(ORIGINAL).startswith("ok ")
        finally:
            child.close()
            stores.limits.clear("acme\x00")
        m.close()


@pytest.mark.parametrize(
    "counters", [None, pytest.param("redis", marks=pytest.mark.redis)]
)
def test_key_limits_hold_across_processes(
    tmp_path: Path, counters: str | None, request: pytest.FixtureRequest
) -> None:
    """A key's own slot and request quota are shared with another process (LMDB folder, or Redis counters): each side sees what the other took."""
    path = tmp_path / "db"
    if counters is not None:
        url = request.getfixturevalue("redis_url")
        counters = f"{url}?prefix={request.getfixturevalue('redis_prefix')}"
    with open_stores(str(path), counters) as stores:
        m = TenantManager(stores.tenants, limits=stores.limits, cache_ttl=0)
        m.create(
            TenantConfig(
                "acme",
                ORIGINAL,
                rate_limit=0,
                token_budget=0,
                max_concurrent_requests=2,
            )
        )
        secret, _ = m.create_key(
            "acme", name="ci", rate_limit=3, max_concurrent_requests=1
        )
        child = _Child(path, counters)
        try:
            tenant = m.get_by_api_key(secret)
            assert tenant.begin_request(0).allowed  # the key's one slot
            assert child.ask(secret, "admit") == "refused by key"
            assert child.ask(ORIGINAL, "admit") == "allowed"  # the tenant's 2nd
            tenant.end_request(0, 0)
            first = m.get_by_api_key(ORIGINAL)
            assert first.begin_request(0).allowed  # the tenant's 2 are taken
            assert child.ask(secret, "admit") == "refused by tenant"
            assert child.ask(ORIGINAL, "end") == "ended"
            first.end_request(0, 0)
            assert child.ask(secret, "admit") == "allowed"  # 2nd of 3 requests
            assert child.ask(secret, "end") == "ended"
            assert tenant.begin_request(0).allowed  # the 3rd
            tenant.end_request(0, 0)
            assert child.ask(secret, "admit") == "refused by key"  # a 4th
            assert tenant.in_flight() == 0
        finally:
            child.close()
            stores.limits.clear("acme\x00")


_times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
_keys = st.builds(
    KeyRecord,
    id=st.text("0123456789abcdef", min_size=16, max_size=16).map(lambda h: "k-" + h),
    key_hash=st.text("0123456789abcdef", min_size=64, max_size=64),
    name=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=100),
    prefix=st.text(max_size=8),
    created_at=_times,
    expires_at=st.none() | _times,
    revoked_at=st.none() | _times,
    model_scope=st.lists(st.text(min_size=1, max_size=20), max_size=3).map(tuple),
    rate_limit=st.integers(0, 2**53),
    token_budget=st.integers(0, 2**53),
    max_concurrent_requests=st.integers(0, 2**53),
)


@given(st.lists(_keys, max_size=5, unique_by=(lambda k: k.id, lambda k: k.key_hash)))
def test_tenant_records_with_keys_round_trip(extra: list[KeyRecord]) -> None:
    """Any set of keys survives the stored form exactly."""
    base = TenantRecord(
        id="acme", key_hash=hash_api_key("first"), rate_limit=1, token_budget=2
    )
    if any(k.key_hash == base.key_hash or k.id == base.key_id for k in extra):
        return
    record = TenantRecord(
        id="acme",
        key_hash=base.key_hash,
        rate_limit=1,
        token_budget=2,
        incarnation=base.incarnation,
        keys=(base.keys[0], *extra),
    )
    assert TenantRecord.from_bytes(record.to_bytes()) == record


def test_key_changes_are_announced_to_every_host(clock: FakeClock) -> None:
    """A key updated, revoked, or rotated without grace, by one manager is seen so by another at once, its cache notwithstanding."""
    store, limits, revocations = (
        MemoryTenantStore(),
        MemoryLimiterStore(),
        MemoryKeyRevocations(),
    )
    heard: list[str | None] = []
    revocations.subscribe(heard.append)
    serving = TenantManager(
        store, limits=limits, clock=clock, cache_ttl=1.0, revocations=revocations
    )
    admin = TenantManager(store, limits=limits, clock=clock, revocations=revocations)
    admin.create(TenantConfig("acme", ORIGINAL, rate_limit=0, token_budget=0))
    secret, key = admin.create_key("acme", name="ci")
    assert serving.get_by_api_key(secret).key_id == key.id  # cached now
    admin.update_key("acme", key.id, name="ci-2")
    assert serving.get_by_api_key(secret).key == admin.list_keys("acme")[-1]
    admin.revoke_key("acme", key.id)
    with pytest.raises(TenantNotFoundError):
        serving.get_by_api_key(secret)
    first = serving.get_by_api_key(ORIGINAL).key
    assert first is not None
    new_secret, new, _ = admin.rotate_api_key("acme", first.id)
    with pytest.raises(TenantNotFoundError):
        serving.get_by_api_key(ORIGINAL)
    assert serving.get_by_api_key(new_secret).key_id == new.id
    # create, create_key, update_key, revoke_key, rotate_api_key
    assert heard.count("acme") == 5
