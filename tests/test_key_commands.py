"""
``zerfoo-cloud key``: create (the key shown once), list (never a key nor
its hash), revoke and rotate with a grace, each audited; bad input is a
one-line error that changes nothing.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.test_cli import run
from zerfoo_cloud import TenantManager, TenantNotFoundError
from zerfoo_cloud.audit import AuditAction
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.tenant_records import hash_api_key


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A store holding tenant acme, which may use m1 and m2."""
    path = tmp_path / "db"
    code, out = run(path, "tenant", "create", "acme", "--model", "m1", "--model", "m2")
    assert code == 0, out
    return path


def _lookup(db: Path, key: str) -> str:
    with LMDBStores.open(db) as stores:
        manager = TenantManager(stores.tenants, limits=stores.limits, cache_ttl=0)
        try:
            return manager.get_by_api_key(key).key_id
        except TenantNotFoundError:
            return "refused"


def _actions(db: Path) -> list[tuple[str, str]]:
    with LMDBStores.open(db) as stores:
        entries = stores.audit.query(
            "acme",
            datetime(2000, 1, 1, tzinfo=timezone.utc),
            datetime(2100, 1, 1, tzinfo=timezone.utc),
        )
    return [(e.action.value, e.resource) for e in entries]


def test_create_list_rotate_revoke(db: Path) -> None:
    """The whole life of a key through the command, each step audited."""
    code, out = run(
        db,
        "key",
        "create",
        "acme",
        "--name",
        "ci",
        "--model",
        "m1",
        "--expires",
        "30d",
        "--json",
    )
    assert code == 0, out
    made = json.loads(out)
    secret = made["api_key"]
    assert made["model_scope"] == ["m1"]
    assert made["state"] == "expiring"
    assert _lookup(db, secret) == made["id"]
    for args in (("key", "list", "acme"), ("key", "list", "acme", "--json")):
        code, out = run(db, *args)
        assert code == 0, out
        assert secret not in out
        assert secret[7:] not in out
        assert hash_api_key(secret) not in out
        assert made["id"] in out
        assert secret[:7] in out
    code, out = run(db, "key", "rotate", "acme", made["id"], "--grace", "1h", "--json")
    assert code == 0, out
    rotated = json.loads(out)
    assert rotated["old_key"]["state"] == "expiring"
    assert _lookup(db, secret) == made["id"]
    assert _lookup(db, rotated["api_key"]) == rotated["id"]
    code, out = run(db, "key", "revoke", "acme", made["id"])
    assert code == 0, out
    assert _lookup(db, secret) == "refused"
    assert _lookup(db, rotated["api_key"]) == rotated["id"]
    actions = _actions(db)
    assert [a for a, _ in actions] == [
        AuditAction.CREATE.value,
        AuditAction.UPDATE.value,
        AuditAction.DELETE.value,
    ]
    assert all(secret not in r and rotated["api_key"] not in r for _, r in actions)


def test_rotation_without_grace_and_the_tenant_command(db: Path) -> None:
    """key rotate without --grace revokes at once; tenant rotate-key still works."""
    code, out = run(db, "key", "list", "acme", "--json")
    (first,) = json.loads(out)
    code, out = run(db, "key", "rotate", "acme", first["id"], "--json")
    assert code == 0, out
    new = json.loads(out)["api_key"]
    assert json.loads(out)["old_key"]["state"] == "revoked"
    assert _lookup(db, new) != "refused"
    code, out = run(db, "tenant", "rotate-key", "acme", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert _lookup(db, data["api_key"]) == data["key_id"]
    assert _lookup(db, new) != "refused"  # other keys keep working


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "acme", "--name", "bad\x07name"), "visible ASCII"),
        (("create", "acme", "--name", "x" * 101), "1 to 100"),
        (("create", "acme", "--name", "x", "--expires", "99999999d"), "expires_at"),
        (("create", "acme", "--name", "x", "--expires", "2001-01-01"), "expires_at"),
        (("create", "acme", "--name", "x", "--expires", "soon"), "--expires"),
        (("create", "acme", "--name", "x", "--model", "m3"), "model_scope"),
        (("create", "ghost", "--name", "x"), "ghost"),
        (("rotate", "acme", "k-0000000000000000"), "has no key"),
        (("rotate", "acme", "k-0000000000000000", "--grace", "1y"), "--grace"),
        (("rotate", "acme", "k-0000000000000000", "--grace", "31d"), "grace"),
        (("revoke", "acme", "k-0000000000000000"), "has no key"),
        (("create", "acme", "--name", "x", "--rate-limit", "61"), "rate_limit"),
        (("create", "acme", "--name", "x", "--token-budget", "-1"), "--token-budget"),
        (("update", "acme", "k-0000000000000000", "--name", "y"), "has no key"),
        (("update", "acme", "k-0000000000000000"), "nothing to change"),
        (
            ("update", "acme", "k-0000000000000000", "--model", "m1", "--all-models"),
            "either",
        ),
        (
            ("update", "acme", "k-0000000000000000", "--expires", "1d", "--no-expiry"),
            "either",
        ),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    db: Path, args: tuple[str, ...], message: str
) -> None:
    """Each refusal exits non-zero with one error line; the keys stay as they were."""
    _, before = run(db, "key", "list", "acme", "--json")
    if args[0] == "rotate" and "grace" in message and args[-1] == "31d":
        args = (args[0], args[1], json.loads(before)[0]["id"], *args[3:])
    code, out = run(db, "key", *args)
    assert code != 0
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, out
    assert message in errors[0]
    assert "Traceback" not in out
    _, after = run(db, "key", "list", "acme", "--json")
    assert after == before


def test_keys_with_their_own_limits(db: Path) -> None:
    """key create takes limits within the tenant's, key update changes them (audited), list shows them, rotate keeps them."""
    code, out = run(
        db, "key", "create", "acme", "--name", "ci", "--rate-limit", "60",
        "--max-concurrent", "2", "--json",
    )  # fmt: skip
    assert code == 0, out
    made = json.loads(out)
    assert (made["rate_limit"], made["token_budget"]) == (60, 0)
    assert made["max_concurrent_requests"] == 2
    code, out = run(db, "key", "list", "acme")
    assert code == 0, out
    assert "60 req/min, 2 at once" in out
    assert "tenant's" in out  # the first key has no limits of its own
    code, out = run(
        db, "key", "update", "acme", made["id"], "--token-budget", "100000",
        "--rate-limit", "0", "--name", "deploy", "--expires", "1d", "--json",
    )  # fmt: skip
    assert code == 0, out
    updated = json.loads(out)
    assert (updated["name"], updated["rate_limit"]) == ("deploy", 0)
    assert updated["token_budget"] == 100_000
    assert updated["state"] == "expiring"
    code, out = run(db, "key", "update", "acme", made["id"], "--no-expiry")
    assert code == 0, out
    assert "never" in out
    code, out = run(db, "key", "update", "acme", made["id"], "--token-budget", "100001")
    assert code != 0
    assert "token_budget" in out
    code, out = run(db, "key", "rotate", "acme", made["id"], "--json")
    assert code == 0, out
    assert json.loads(out)["token_budget"] == 100_000
    assert (
        "update",
        f"key {made['id']} updated: expires_at, name, rate_limit, token_budget",
    ) in _actions(db)
    assert ("update", f"key {made['id']} updated: expires_at") in _actions(db)
