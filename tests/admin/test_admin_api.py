"""
The admin API: tenant CRUD, authentication, authorization, audit and limits.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.admin._client import Client, drive, http_scope
from tests.admin.conftest import (
    ACME_KEY,
    ADMIN_KEY,
    GLOBEX_KEY,
    SECRET,
    admin_headers,
    issue_session,
)
from tests.conftest import FakeClock
from zerfoo_cloud import (
    AuditAction,
    AuditEntry,
    AuditLogger,
    AuditResult,
    CloudError,
    InvalidConfigError,
    StoreError,
    Tenant,
    TenantManager,
    TenantNotFoundError,
    UsageSummary,
    hash_api_key,
)
from zerfoo_cloud.http.admin import (
    DEFAULT_MAX_BODY,
    MAX_AUDIT_LIMIT,
    AdminAPI,
    SessionSigner,
    UsageMeter,
)
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryAuditStore

ADMIN = admin_headers()


def session_headers(
    sessions: SessionSigner, tenants: TenantManager, tenant_id: str = "acme"
) -> dict[str, str]:
    """
    The Authorization header of a fresh session for *tenant_id*.
    """
    return {"Authorization": f"Bearer {issue_session(sessions, tenants, tenant_id)}"}


def last_entry(store: MemoryAuditStore) -> tuple[str, AuditAction, AuditResult, int]:
    """
    The tenant, action, result and status of the last audit entry.
    """
    entry = store.all()[-1]
    return entry.tenant_id, entry.action, entry.result, entry.status_code


# -- CRUD with the admin key ------------------------------------------------


def test_create_returns_the_key_once_and_it_works(
    client: Client, tenants: TenantManager, audit_store: MemoryAuditStore
) -> None:
    """POST creates a tenant (201, Location) whose returned key authenticates it."""
    response = client.post(
        "/admin/tenants",
        json={
            "id": "initech",
            "rate_limit": 10,
            "token_budget": 1000,
            "max_concurrent_requests": 2,
            "model_allow_list": ["llama-3", "llama-3"],
        },
        headers=ADMIN,
    )
    assert response.status_code == 201
    assert response.headers["location"] == "/admin/tenants/initech"
    body = response.json()
    assert body["id"] == "initech"
    assert body["model_allow_list"] == ["llama-3"]
    assert body["max_concurrent_requests"] == 2
    assert body["api_key"].startswith("zc-")
    assert body["key_id"] == hash_api_key(body["api_key"])[:8]
    assert tenants.get_by_api_key(body["api_key"]).id == "initech"
    assert last_entry(audit_store) == (
        "initech",
        AuditAction.CREATE,
        AuditResult.SUCCESS,
        201,
    )
    shown = client.get("/admin/tenants/initech", headers=ADMIN).json()
    assert "api_key" not in shown
    assert shown["created_at"].endswith("Z")


def test_create_with_a_chosen_key(client: Client, tenants: TenantManager) -> None:
    """An admin may choose a tenant's key (16 to 256 safe characters)."""
    key = "k" * 16
    response = client.post(
        "/admin/tenants",
        json={"id": "chosen", "api_key": key, "rate_limit": 1, "token_budget": 1.0},
        headers=ADMIN,
    )
    assert response.status_code == 201
    assert response.json()["token_budget"] == 1
    assert tenants.get_by_api_key(key).id == "chosen"


def test_list_get_update_rotate_delete(
    client: Client, tenants: TenantManager, audit_store: MemoryAuditStore
) -> None:
    """The admin key lists, reads, changes, re-keys and deletes tenants, all audited."""
    listed = client.get("/admin/tenants", headers=ADMIN).json()
    assert listed["object"] == "list"
    assert [t["id"] for t in listed["data"]] == ["acme", "globex"]
    assert last_entry(audit_store) == ("", AuditAction.LIST, AuditResult.SUCCESS, 200)

    got = client.get("/admin/tenants/acme", headers=ADMIN).json()
    assert got["rate_limit"] == 60
    assert last_entry(audit_store) == (
        "acme",
        AuditAction.LIST,
        AuditResult.SUCCESS,
        200,
    )

    changed = client.request(
        "PATCH",
        "/admin/tenants/acme",
        json={"rate_limit": 5, "model_allow_list": ["m1"]},
        headers=ADMIN,
    )
    assert changed.status_code == 200
    assert changed.json()["rate_limit"] == 5
    assert tenants.get("acme").record.model_allow_list == ("m1",)
    assert last_entry(audit_store)[1:] == (AuditAction.UPDATE, AuditResult.SUCCESS, 200)

    rotated = client.post("/admin/tenants/acme/rotate-key", headers=ADMIN)
    assert rotated.status_code == 200
    new_key = rotated.json()["api_key"]
    assert tenants.get_by_api_key(new_key).id == "acme"
    with pytest.raises(TenantNotFoundError):
        tenants.get_by_api_key(ACME_KEY)
    assert (
        audit_store.all()[-1].resource
        == "tenant/acme/key by admin:" + hash_api_key(ADMIN_KEY)[:8]
    )

    deleted = client.request("DELETE", "/admin/tenants/acme", headers=ADMIN)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert last_entry(audit_store) == (
        "acme",
        AuditAction.DELETE,
        AuditResult.SUCCESS,
        204,
    )
    missing = client.get("/admin/tenants/acme", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "tenant_not_found"
    assert last_entry(audit_store) == ("acme", AuditAction.LIST, AuditResult.ERROR, 404)


def test_unknown_tenant_is_404_everywhere(client: Client) -> None:
    """Every per-tenant route answers 404 for a tenant that does not exist."""
    for method, path, body in [
        ("GET", "/admin/tenants/nobody", None),
        ("PATCH", "/admin/tenants/nobody", {"rate_limit": 1}),
        ("DELETE", "/admin/tenants/nobody", None),
        ("POST", "/admin/tenants/nobody/rotate-key", None),
        ("GET", "/admin/tenants/nobody/usage", None),
        ("GET", "/admin/tenants/nobody/audit", None),
        ("GET", "/admin/tenants/%2F..%2Fetc", None),
    ]:
        response = client.request(method, path, json=body, headers=ADMIN)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_duplicate_tenant_is_409(client: Client) -> None:
    """Creating an id that exists is a conflict, and so is reusing a key."""
    response = client.post(
        "/admin/tenants",
        json={"id": "acme", "rate_limit": 1, "token_budget": 1},
        headers=ADMIN,
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "tenant_exists"
    reused = client.post(
        "/admin/tenants",
        json={"id": "new", "api_key": ACME_KEY, "rate_limit": 1, "token_budget": 1},
        headers=ADMIN,
    )
    assert reused.status_code == 409


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b"", "invalid_json", None),
        (b"{", "invalid_json", None),
        (b"[1, 2]", "invalid_json", None),
        (b'{"id": "x", "rate_limit": NaN, "token_budget": 1}', "invalid_json", None),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json", None),
        (
            b'{"id": "x", "rate_limit": 1, "token_budget": 1, "extra": '
            + b"[" * 40
            + b"]" * 40
            + b"}",
            "invalid_json",
            None,
        ),
        (b"\xff\xfe", "invalid_json", None),
        (b'{"rate_limit": 1, "token_budget": 1}', "missing_field", "id"),
        (b'{"id": "x", "token_budget": 1}', "missing_field", "rate_limit"),
        (
            b'{"id": "x", "rate_limit": 1, "token_budget": 1, "owner": "y"}',
            "unknown_field",
            "owner",
        ),
        (b'{"id": "-x", "rate_limit": 1, "token_budget": 1}', "invalid_field", "id"),
        (b'{"id": 5, "rate_limit": 1, "token_budget": 1}', "invalid_field", "id"),
        (
            b'{"id": "x", "rate_limit": true, "token_budget": 1}',
            "invalid_field",
            "rate_limit",
        ),
        (
            b'{"id": "x", "rate_limit": 1.5, "token_budget": 1}',
            "invalid_field",
            "rate_limit",
        ),
        (
            b'{"id": "x", "rate_limit": "1", "token_budget": 1}',
            "invalid_field",
            "rate_limit",
        ),
        (
            b'{"id": "x", "rate_limit": -1, "token_budget": 1}',
            "invalid_field",
            "rate_limit",
        ),
        (
            b'{"id": "x", "rate_limit": 1e300, "token_budget": 1}',
            "invalid_field",
            "rate_limit",
        ),
        (
            b'{"id": "x", "rate_limit": 1, "token_budget": 1, "model_allow_list": "m"}',
            "invalid_field",
            "model_allow_list",
        ),
        (
            b'{"id": "x", "rate_limit": 1, "token_budget": 1, "model_allow_list": [1]}',
            "invalid_field",
            "model_allow_list",
        ),
        (
            b'{"id": "x", "rate_limit": 1, "token_budget": 1, "model_allow_list": [""]}',
            "invalid_field",
            "model_allow_list",
        ),
        (
            b'{"id": "x", "rate_limit": 1, "token_budget": 1, "api_key": null}',
            "invalid_field",
            "api_key",
        ),
        (
            b'{"id": "x", "rate_limit": 1, "token_budget": 1, "api_key": "short"}',
            "invalid_field",
            "api_key",
        ),
        (
            b'{"id": "x", "rate_limit": 1, "token_budget": 1, "api_key": " padded-key-0123456789 "}',
            "invalid_field",
            "api_key",
        ),
    ],
)
def test_bad_create_bodies_are_400(
    client: Client,
    tenants: TenantManager,
    audit_store: MemoryAuditStore,
    body: bytes,
    code: str,
    param: str | None,
) -> None:
    """Bad JSON and bad fields are 400 with a clear message, never a 500, and nothing is created."""
    response = client.post(
        "/admin/tenants",
        content=body,
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert error["param"] == param
    assert error["message"]
    assert len(error["message"]) <= 400
    assert [t.id for t in tenants.list()] == ["acme", "globex"]
    entry = audit_store.all()[-1]
    assert (entry.action, entry.result, entry.status_code) == (
        AuditAction.CREATE,
        AuditResult.ERROR,
        400,
    )


def test_huge_values_are_not_echoed(client: Client) -> None:
    """A long bad value is refused with a short message."""
    response = client.post(
        "/admin/tenants",
        json={
            "id": "x",
            "rate_limit": 1,
            "token_budget": 1,
            "model_allow_list": ["m" * 100_000],
        },
        headers=ADMIN,
    )
    assert response.status_code == 400
    assert len(response.json()["error"]["message"]) <= 400


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "missing_field"),
        ({"api_key": "k" * 20}, "unknown_field"),
        ({"id": "other"}, "unknown_field"),
        ({"token_budget": None}, "invalid_field"),
        ({"max_concurrent_requests": 2**53 + 1}, "invalid_field"),
    ],
)
def test_bad_updates_are_400(
    client: Client, body: dict[str, object], code: str
) -> None:
    """An empty PATCH, a key or id change, and bad values are refused."""
    response = client.request("PATCH", "/admin/tenants/acme", json=body, headers=ADMIN)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


# -- authentication ---------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_credentials"),
        ({"Authorization": "Bearer wrong-admin-key"}, "invalid_credentials"),
        ({"Authorization": f"Bearer {ADMIN_KEY}x"}, "invalid_credentials"),
        ({"Authorization": f"Bearer {ACME_KEY}"}, "invalid_credentials"),
        ({"Authorization": f"Basic {ADMIN_KEY}"}, "invalid_authorization"),
        ({"Authorization": "Bearer"}, "invalid_authorization"),
        ({"Cookie": "zc_session=v1.abc.def"}, "invalid_credentials"),
    ],
)
def test_missing_or_wrong_credentials_are_401_and_audited(
    client: Client,
    audit_store: MemoryAuditStore,
    headers: dict[str, str],
    code: str,
) -> None:
    """No key, a wrong key, a tenant's key or a bad scheme is 401 in OpenAI's shape, audited as auth/unauthorized."""
    for method, path in [("GET", "/admin/tenants"), ("DELETE", "/admin/tenants/acme")]:
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        body = response.json()
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["code"] == code
        assert body["error"]["type"] == "invalid_request_error"
        entry = audit_store.all()[-1]
        assert entry.action == AuditAction.AUTH
        assert entry.result == AuditResult.UNAUTHORIZED
        assert entry.status_code == 401
        assert entry.method == method
        assert entry.path == path
        assert entry.remote_addr == "203.0.113.7"
    assert audit_store.all()[-1].tenant_id == "acme"


def test_only_the_configured_hashes_grant_access(
    make_api: Callable[..., AdminAPI],
) -> None:
    """Several admin keys work; without admin keys or sessions nothing does."""
    other = "zca-second-admin-key-0123456789abcdef"
    api = make_api(
        admin_key_hashes=[hash_api_key(ADMIN_KEY), hash_api_key(other).upper()]
    )
    client = Client(api)
    assert client.get("/admin/tenants", headers=admin_headers(other)).status_code == 200
    assert client.get("/admin/tenants", headers=ADMIN).status_code == 200
    locked = Client(make_api(admin_key_hashes=(), sessions=None, sso={}))
    assert locked.get("/admin/tenants", headers=ADMIN).status_code == 401


def test_a_single_hash_string_is_accepted(make_api: Callable[..., AdminAPI]) -> None:
    """admin_key_hashes may be one hash instead of a list of them."""
    api = make_api(admin_key_hashes=hash_api_key(ADMIN_KEY))
    assert Client(api).get("/admin/tenants", headers=ADMIN).status_code == 200


# -- tenant-admin sessions ----------------------------------------------------


def test_session_reads_its_own_tenant_only(
    client: Client,
    sessions: SessionSigner,
    audit_store: MemoryAuditStore,
    tenants: TenantManager,
) -> None:
    """A session for acme reads acme (bearer or cookie) and is refused globex with 403, audited as denied."""
    bearer = session_headers(sessions, tenants)
    assert client.get("/admin/tenants/acme", headers=bearer).status_code == 200
    entry = audit_store.all()[-1]
    assert entry.resource == "tenant/acme by sso:alice@example.com"
    cookie = {"Cookie": f"zc_session={issue_session(sessions, tenants, 'acme', 'bob')}"}
    assert client.get("/admin/tenants/acme", headers=cookie).status_code == 200

    for headers in (bearer, cookie):
        response = client.get("/admin/tenants/globex", headers=headers)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        assert "globex" not in response.text
        assert last_entry(audit_store) == (
            "globex",
            AuditAction.LIST,
            AuditResult.DENIED,
            403,
        )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/admin/tenants", None),
        ("POST", "/admin/tenants", {"id": "x", "rate_limit": 1, "token_budget": 1}),
        ("PATCH", "/admin/tenants/acme", {"rate_limit": 100000}),
        ("DELETE", "/admin/tenants/acme", None),
        ("GET", "/admin/tenants/globex/usage", None),
        ("GET", "/admin/tenants/globex/audit", None),
        ("POST", "/admin/tenants/globex/rotate-key", None),
        ("GET", "/admin/tenants/nobody", None),
    ],
)
def test_session_cannot_act_beyond_its_tenant(
    client: Client,
    sessions: SessionSigner,
    tenants: TenantManager,
    audit_store: MemoryAuditStore,
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    """Listing, creating, changing limits, deleting, and touching other tenants are 403 and change nothing."""
    before = tenants.records()
    response = client.request(
        method, path, json=body, headers=session_headers(sessions, tenants)
    )
    assert response.status_code == 403
    assert tenants.records() == before
    assert audit_store.all()[-1].result == AuditResult.DENIED


def test_session_rotates_its_own_key_and_reads_its_usage_and_audit(
    client: Client, sessions: SessionSigner, tenants: TenantManager
) -> None:
    """A tenant admin may rotate its own key and read its usage and audit log."""
    headers = session_headers(sessions, tenants)
    rotated = client.post("/admin/tenants/acme/rotate-key", headers=headers)
    assert rotated.status_code == 200
    assert tenants.get_by_api_key(rotated.json()["api_key"]).id == "acme"
    assert client.get("/admin/tenants/acme/usage", headers=headers).status_code == 200
    audit = client.get("/admin/tenants/acme/audit", headers=headers).json()
    assert [e["resource"] for e in audit["data"]] == [
        "tenant/acme/key by sso:alice@example.com",
        "tenant/acme/usage by sso:alice@example.com",
    ]


def test_expired_and_tampered_sessions_are_401(
    client: Client, sessions: SessionSigner, clock: FakeClock, tenants: TenantManager
) -> None:
    """A session past its ttl, altered, or signed with another secret is refused."""
    token = issue_session(sessions, tenants, "acme", "alice")
    clock.advance(899)
    assert (
        client.get(
            "/admin/tenants/acme", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 200
    )
    clock.advance(1)
    expired = client.get(
        "/admin/tenants/acme", headers={"Authorization": f"Bearer {token}"}
    )
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "session_expired"
    cookie = client.get(
        "/admin/tenants/acme", headers={"Cookie": f"zc_session={token}"}
    )
    assert cookie.json()["error"]["code"] == "session_expired"

    fresh = issue_session(sessions, tenants, "acme", "alice")
    tampered = fresh[:-2] + ("AA" if fresh[-2:] != "AA" else "BB")
    forged = SessionSigner(b"f" * 32, clock=clock).issue(
        "acme", "alice", incarnation=tenants.get("acme").record.incarnation
    )
    for bad in (tampered, forged):
        response = client.get(
            "/admin/tenants/acme", headers={"Authorization": f"Bearer {bad}"}
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_credentials"


def test_sessions_are_refused_without_a_signer(
    make_api: Callable[..., AdminAPI], sessions: SessionSigner, tenants: TenantManager
) -> None:
    """An app without sessions accepts admin keys only."""
    client = Client(make_api(sessions=None, sso={}))
    response = client.get(
        "/admin/tenants/acme", headers=session_headers(sessions, tenants)
    )
    assert response.status_code == 401
    cookie = {"Cookie": f"zc_session={issue_session(sessions, tenants, 'acme', 'a')}"}
    assert client.get("/admin/tenants/acme", headers=cookie).status_code == 401


# -- usage ------------------------------------------------------------------


def test_usage_by_model_and_day(
    api: AdminAPI, client: Client, clock: FakeClock
) -> None:
    """Usage totals group by model and UTC day, and cover the last 30 days by default."""
    assert api.meter is not None
    meter = api.meter
    record = meter.record  # type: ignore[attr-defined]
    record("acme", 100, 900, model="old")  # 31 days before "now": left out
    clock.advance(86_400)
    record("acme", 10, 20, model="a")
    record("acme", 1, 2, model="b")
    clock.advance(86_400)
    record("acme", 5, 5, model="a")
    record("globex", 7, 7, model="a")
    clock.advance(29 * 86_400)

    usage = client.get("/admin/tenants/acme/usage", headers=ADMIN).json()
    assert usage["by"] == ["model", "day"]
    day1 = (
        datetime.fromtimestamp(1_700_000_000 + 86_400, timezone.utc).date().isoformat()
    )
    day2 = (
        datetime.fromtimestamp(1_700_000_000 + 2 * 86_400, timezone.utc)
        .date()
        .isoformat()
    )
    assert [
        (r["model"], r["day"], r["total_tokens"], r["requests"]) for r in usage["data"]
    ] == [
        ("a", day1, 30, 1),
        ("b", day1, 3, 1),
        ("a", day2, 10, 1),
    ]
    assert usage["totals"] == {
        "input_tokens": 16,
        "output_tokens": 27,
        "total_tokens": 43,
        "requests": 3,
        "costs": [],
    }

    by_model = client.get("/admin/tenants/acme/usage?by=model", headers=ADMIN).json()
    assert [(r["model"], r["day"], r["input_tokens"]) for r in by_model["data"]] == [
        ("a", None, 15),
        ("b", None, 1),
    ]
    total = client.get("/admin/tenants/acme/usage?by=", headers=ADMIN).json()
    assert [(r["model"], r["day"], r["requests"]) for r in total["data"]] == [
        (None, None, 3)
    ]

    everything = client.get(
        "/admin/tenants/acme/usage",
        params={"since": "2000-01-01", "by": "day,model"},
        headers=ADMIN,
    ).json()
    assert everything["totals"]["requests"] == 4
    assert everything["since"] == "2000-01-01T00:00:00Z"


def test_usage_range_is_inclusive_and_accepts_offsets(
    api: AdminAPI, client: Client, clock: FakeClock
) -> None:
    """since and until include their instants, in any offset; a reversed range is empty."""
    assert api.meter is not None
    api.meter.record("acme", 1, 1, model="m")  # type: ignore[attr-defined]
    at = datetime.fromtimestamp(clock.now, timezone.utc)
    plus_two = at.astimezone(timezone(timedelta(hours=2))).isoformat()
    for params in (
        {"since": plus_two, "until": plus_two},
        {
            "since": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "until": at.strftime("%Y-%m-%dT%H:%M:%S.%fz"),
        },
        {"until": at.strftime("%Y-%m-%d %H:%M:%S.%f123456")},
    ):
        usage = client.get(
            "/admin/tenants/acme/usage", params=params, headers=ADMIN
        ).json()
        assert usage["totals"]["requests"] == 1, params
    later = (at + timedelta(microseconds=1)).isoformat()
    assert (
        client.get(
            "/admin/tenants/acme/usage", params={"since": later}, headers=ADMIN
        ).json()["data"]
        == []
    )
    reversed_range = client.get(
        "/admin/tenants/acme/usage",
        params={"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"},
        headers=ADMIN,
    )
    assert reversed_range.status_code == 200
    assert reversed_range.json()["data"] == []
    extremes = client.get(
        "/admin/tenants/acme/usage",
        params={
            "since": "0000-01-01T00:00:00+01:00",
            "until": "9999-12-31T23:59:60-01:00",
        },
        headers=ADMIN,
    ).json()
    assert extremes["since"] == "1970-01-01T00:00:00Z"
    assert extremes["totals"]["requests"] == 1


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("since=yesterday", "since"),
        ("until=2024-13-01T00:00:00Z", "until"),
        ("since=2024-01-01T00:00:00%2B24:00", "since"),
        ("by=tenant", "by"),
        ("by=model,model", "by"),
        ("by=model,%20day", "by"),
        ("sinc=2024-01-01", "sinc"),
        ("since=2024-01-01&since=2024-01-02", "since"),
    ],
)
def test_bad_usage_queries_are_400(client: Client, query: str, param: str) -> None:
    """Bad times, groupings, unknown and repeated parameters are 400 naming the parameter."""
    response = client.get(f"/admin/tenants/acme/usage?{query}", headers=ADMIN)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_too_many_query_fields_are_400(client: Client) -> None:
    """A query string with more than 32 fields is refused."""
    query = "&".join(f"f{i}=1" for i in range(40))
    assert (
        client.get(f"/admin/tenants/acme/usage?{query}", headers=ADMIN).status_code
        == 400
    )


def test_a_meter_of_ones_own_gets_the_parsed_range_and_grouping(
    make_api: Callable[..., AdminAPI], clock: FakeClock
) -> None:
    """Any UsageMeter is asked for totals with the range and grouping read from the query."""
    calls: list[tuple[object, ...]] = []

    class OwnMeter:
        def summary(
            self, tenant_id: str, start: datetime, end: datetime, by: Sequence[str]
        ) -> list[UsageSummary]:
            calls.append((tenant_id, start, end, tuple(by)))
            return [
                UsageSummary("m", date(2024, 5, 1), 3, 4, 2, 1_500_000, "USD"),
                UsageSummary("m", date(2024, 5, 1), 1, 1, 1),
            ]

    meter: UsageMeter = OwnMeter()
    client = Client(make_api(meter=meter))
    usage = client.get("/admin/tenants/acme/usage?by=day,model", headers=ADMIN).json()
    assert usage["data"] == [
        {
            "model": "m",
            "day": "2024-05-01",
            "input_tokens": 3,
            "output_tokens": 4,
            "total_tokens": 7,
            "requests": 2,
            "cost": "1.5",
            "cost_micros": 1_500_000,
            "currency": "USD",
        },
        {
            "model": "m",
            "day": "2024-05-01",
            "input_tokens": 1,
            "output_tokens": 1,
            "total_tokens": 2,
            "requests": 1,
            "cost": "0",
            "cost_micros": 0,
            "currency": "",
        },
    ]
    assert usage["totals"]["costs"] == [
        {"currency": "USD", "cost": "1.5", "cost_micros": 1_500_000}
    ]
    assert usage["totals"]["requests"] == 3
    now = datetime.fromtimestamp(clock.now, timezone.utc)
    assert calls == [("acme", now - timedelta(days=30), now, ("day", "model"))]


def test_usage_and_audit_without_their_stores_are_404(
    make_api: Callable[..., AdminAPI],
) -> None:
    """Without a meter or an audit logger their routes say so with 404."""
    client = Client(make_api(meter=None, audit=None))
    usage = client.get("/admin/tenants/acme/usage", headers=ADMIN)
    assert usage.status_code == 404
    assert usage.json()["error"]["code"] == "usage_not_configured"
    audit = client.get("/admin/tenants/acme/audit", headers=ADMIN)
    assert audit.json()["error"]["code"] == "audit_not_configured"
    assert client.get("/admin/tenants", headers=ADMIN).status_code == 200


# -- audit ------------------------------------------------------------------


def test_audit_query_limit_at_and_past_its_bounds(
    api: AdminAPI, client: Client, clock: FakeClock
) -> None:
    """limit=1000 is accepted, 0 and 1001 are refused; the newest entries are kept, oldest first."""
    assert api.audit is not None
    for i in range(MAX_AUDIT_LIMIT + 5):
        api.audit.log(AuditEntry(tenant_id="acme", resource=f"r{i}"))
        clock.advance(0.001)
    full = client.get(
        f"/admin/tenants/acme/audit?limit={MAX_AUDIT_LIMIT}", headers=ADMIN
    ).json()
    assert len(full["data"]) == MAX_AUDIT_LIMIT
    assert full["truncated"] is True
    assert full["data"][0]["resource"] == "r5"
    assert full["data"][-1]["resource"] == f"r{MAX_AUDIT_LIMIT + 4}"
    # Each query is audited too: stop the range before the first of them.
    end = datetime.fromtimestamp(clock.now - 0.0005, timezone.utc).isoformat()
    two = client.get(
        "/admin/tenants/acme/audit", params={"limit": 2, "until": end}, headers=ADMIN
    ).json()
    assert [e["resource"] for e in two["data"]] == [
        f"r{MAX_AUDIT_LIMIT + 3}",
        f"r{MAX_AUDIT_LIMIT + 4}",
    ]
    default = client.get("/admin/tenants/acme/audit", headers=ADMIN).json()
    assert len(default["data"]) == 100
    for bad in ("0", str(MAX_AUDIT_LIMIT + 1), "-1", "ten", "1.5", "\u0661"):
        response = client.get(
            "/admin/tenants/acme/audit", params={"limit": bad}, headers=ADMIN
        )
        assert response.status_code == 400, bad
        assert response.json()["error"]["param"] == "limit"


def test_no_key_token_or_body_reaches_the_audit_or_the_logs(
    client: Client,
    sessions: SessionSigner,
    audit_store: MemoryAuditStore,
    caplog: pytest.LogCaptureFixture,
    tenants: TenantManager,
) -> None:
    """Keys, session tokens and request bodies never appear in audit entries or log records."""
    caplog.set_level(logging.DEBUG)
    token = issue_session(sessions, tenants, "acme", "alice")
    secrets = [ADMIN_KEY, ACME_KEY, GLOBEX_KEY, token, "body-marker-7f3a"]
    created = client.post(
        "/admin/tenants",
        json={
            "id": "initech",
            "rate_limit": 1,
            "token_budget": 1,
            "model_allow_list": ["body-marker-7f3a"],
        },
        headers=ADMIN,
    )
    secrets.append(created.json()["api_key"])
    rotated = client.post(
        "/admin/tenants/acme/rotate-key", headers={"Authorization": f"Bearer {token}"}
    )
    secrets.append(rotated.json()["api_key"])
    client.get(f"/admin/tenants/{ACME_KEY}", headers=ADMIN)
    client.get(f"/admin/tenants/{ADMIN_KEY}/usage?since=2020-01-01", headers=ADMIN)
    client.get("/admin/tenants", headers={"Authorization": f"Bearer {ACME_KEY}"})
    client.post("/admin/tenants", content=b'{"id": "body-marker-7f3a"', headers=ADMIN)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("zerfoo_cloud")]
    dump = repr(audit_store.all()) + "\n".join(ours)
    for secret in secrets:
        assert secret not in dump
    assert "<redacted>" in dump


def test_an_audit_failure_does_not_lose_the_new_key(
    make_api: Callable[..., AdminAPI],
    caplog: pytest.LogCaptureFixture,
    tenants: TenantManager,
) -> None:
    """When the audit store fails the change still answers (with its key) and the failure is logged."""
    client = Client(make_api(audit=AuditLogger(_ClosedAudit())))
    response = client.post("/admin/tenants/acme/rotate-key", headers=ADMIN)
    assert response.status_code == 200
    assert tenants.get_by_api_key(response.json()["api_key"]).id == "acme"
    assert "audit entry not written" in caplog.text
    assert response.json()["api_key"] not in caplog.text


class _ClosedAudit:
    """
    An audit store whose disk is gone: every append fails.
    """

    #: Loggers that queue writes for a background thread store entries of
    #: in-memory stores at once, so the failure reaches the caller.
    in_memory = True

    def append(self, entry: AuditEntry) -> AuditEntry:
        raise StoreError("the audit store is closed")

    def query(self, tenant_id: str, start: datetime, end: datetime) -> list[AuditEntry]:
        return []

    def close(self) -> None:
        pass


def test_a_failing_tenant_store_is_503(
    make_api: Callable[..., AdminAPI],
    tmp_path: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store that fails (a closed LMDB file) answers 503 with what failed."""
    stores = LMDBStores.open(tmp_path / "db")
    manager = TenantManager(stores.tenants, limits=stores.limits, clock=clock)
    audit_store = MemoryAuditStore()
    api = AdminAPI(
        manager,
        audit=AuditLogger(audit_store),
        admin_key_hashes=[hash_api_key(ADMIN_KEY)],
        clock=clock,
    )
    stores.close()
    response = Client(api).get("/admin/tenants/acme", headers=ADMIN)
    assert response.status_code == 503
    # The audit cannot tell whether "acme" is a key: it leaves it out.
    entry = audit_store.all()[-1]
    assert (entry.tenant_id, entry.status_code) == ("", 503)
    assert entry.path == "/admin/tenants/<redacted>"
    assert response.json()["error"]["type"] == "server_error"
    assert "closed" in response.json()["error"]["message"]
    assert "store failure" in caplog.text


def test_admin_api_on_lmdb_stores(tmp_path: Path, clock: FakeClock) -> None:
    """The API works on the LMDB tenant store, and its changes are seen by another manager at once."""
    stores = LMDBStores.open(tmp_path / "db")
    try:
        manager = TenantManager(stores.tenants, limits=stores.limits, clock=clock)
        client = Client(AdminAPI(manager, admin_key_hashes=[hash_api_key(ADMIN_KEY)]))
        created = client.post(
            "/admin/tenants",
            json={"id": "acme", "rate_limit": 1, "token_budget": 2},
            headers=ADMIN,
        ).json()
        other = TenantManager(stores.tenants, limits=stores.limits)
        assert other.get_by_api_key(created["api_key"]).id == "acme"
    finally:
        stores.close()


# -- limits and protocol ------------------------------------------------------


def test_body_at_the_limit_is_read_and_past_it_is_413(
    make_api: Callable[..., AdminAPI], audit_store: MemoryAuditStore
) -> None:
    """A body of exactly max_body bytes is processed; one byte more is 413, audited."""
    client = Client(make_api(max_body=256))
    body = json.dumps({"id": "sized", "rate_limit": 1, "token_budget": 1}).encode()
    at_limit = body + b" " * (256 - len(body))
    assert len(at_limit) == 256
    ok = client.post("/admin/tenants", content=at_limit, headers=ADMIN)
    assert ok.status_code == 201
    past = at_limit.replace(b"sized", b"sized2") + b" "
    assert len(past) == 258
    response = client.post("/admin/tenants", content=past[:257], headers=ADMIN)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert last_entry(audit_store) == ("", AuditAction.CREATE, AuditResult.DENIED, 413)


def test_streamed_body_past_the_limit_is_413(make_api: Callable[..., AdminAPI]) -> None:
    """A body without Content-Length is cut off as soon as it passes max_body."""
    api = make_api(max_body=100)
    chunk = {"type": "http.request", "body": b" " * 60, "more_body": True}
    sent = drive(
        api,
        http_scope(
            "POST",
            "/admin/tenants",
            [(b"authorization", f"Bearer {ADMIN_KEY}".encode())],
        ),
        [chunk, chunk, {"type": "http.request", "body": b"{}"}],
    )
    assert sent[0]["status"] == 413
    under = drive(
        api,
        http_scope(
            "POST",
            "/admin/tenants",
            [(b"authorization", f"Bearer {ADMIN_KEY}".encode())],
        ),
        [
            {"type": "http.request", "body": b'{"id": "streamed", ', "more_body": True},
            {"type": "http.request", "body": b'"rate_limit": 1, "token_budget": 1}'},
        ],
    )
    assert under[0]["status"] == 201


def test_declared_length_is_checked_before_reading(
    make_api: Callable[..., AdminAPI],
) -> None:
    """A Content-Length over the limit is 413 at once; a malformed one is 400."""
    api = make_api(max_body=100)
    auth = (b"authorization", f"Bearer {ADMIN_KEY}".encode())
    sent = drive(
        api,
        http_scope("POST", "/admin/tenants", [auth, (b"content-length", b"101")]),
        [],
    )
    assert sent[0]["status"] == 413
    sent = drive(
        api,
        http_scope("POST", "/admin/tenants", [auth, (b"content-length", b"-1")]),
        [],
    )
    assert sent[0]["status"] == 400


def test_client_gone_mid_body_sends_nothing(
    make_api: Callable[..., AdminAPI], tenants: TenantManager
) -> None:
    """A client that disconnects before its body is read gets no response and changes nothing."""
    api = make_api()
    auth = (b"authorization", f"Bearer {ADMIN_KEY}".encode())
    sent = drive(
        api,
        http_scope("POST", "/admin/tenants", [auth]),
        [
            {"type": "http.request", "body": b"{", "more_body": True},
            {"type": "http.disconnect"},
        ],
    )
    assert sent == []
    assert len(tenants.list()) == 2


@pytest.mark.parametrize("max_body", [0, -1, DEFAULT_MAX_BODY * 64 + 1, True, 1.5])
def test_max_body_out_of_range_is_refused(
    make_api: Callable[..., AdminAPI], max_body: object
) -> None:
    """max_body must be an integer from 1 byte to 64 MiB."""
    with pytest.raises(InvalidConfigError) as info:
        make_api(max_body=max_body)
    assert info.value.field == "max_body"


def test_max_body_bounds_are_accepted(make_api: Callable[..., AdminAPI]) -> None:
    """max_body of 1 byte and of 64 MiB are both accepted."""
    assert make_api(max_body=1).max_body == 1
    assert make_api(max_body=DEFAULT_MAX_BODY * 64).max_body == 64 << 20


@pytest.mark.parametrize("value", ["not-a-hash", ADMIN_KEY, "g" * 64, 12345])
def test_admin_key_hashes_must_be_hashes(
    make_api: Callable[..., AdminAPI], value: object
) -> None:
    """A raw key or anything but a SHA-256 hex digest is refused, without echoing it."""
    with pytest.raises(InvalidConfigError) as info:
        make_api(admin_key_hashes=[value])
    assert str(value) not in str(info.value)
    assert info.value.field == "admin_key_hashes"


def test_routes_methods_and_other_paths(
    client: Client, audit_store: MemoryAuditStore
) -> None:
    """Unknown routes are 404, wrong methods 405 with Allow, other paths 404; all in the error shape."""
    wrong = client.request("PUT", "/admin/tenants/acme", headers=ADMIN)
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, PATCH, DELETE"
    assert last_entry(audit_store) == (
        "acme",
        AuditAction.UPDATE,
        AuditResult.ERROR,
        405,
    )
    assert (
        client.get("/admin/tenants/acme/rotate-key", headers=ADMIN).headers["allow"]
        == "POST"
    )
    for path in (
        "/admin",
        "/admin/",
        "/admin/users",
        "/admin/tenants/acme/usage/x",
        "/admin/tenants/",
        "/admin/tenants/acme/keys/x/y",
    ):
        response = client.get(path, headers=ADMIN)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert client.get("/admin/users").status_code == 401
    for path in ("/", "/v1/models", "/sso/other", "/adminx"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_every_response_forbids_caching(client: Client) -> None:
    """Responses carry Cache-Control: no-store and nosniff (keys travel in them)."""
    for response in (
        client.get("/admin/tenants", headers=ADMIN),
        client.get("/admin/tenants"),
        client.get("/nowhere"),
    ):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_handles_names_its_paths() -> None:
    """handles() is true for /admin and /sso paths only."""
    assert AdminAPI.handles("/admin")
    assert AdminAPI.handles("/admin/tenants")
    assert AdminAPI.handles("/sso/saml/acme/login")
    assert not AdminAPI.handles("/administrator")
    assert not AdminAPI.handles("/v1/chat/completions")


def test_lifespan_and_websocket(api: AdminAPI) -> None:
    """Lifespan events are acknowledged; WebSocket connections are refused."""
    sent = drive(
        api,
        {"type": "lifespan", "asgi": {"version": "3.0"}},
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    )
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    sent = drive(
        api,
        {"type": "websocket", "path": "/admin/tenants", "headers": []},
        [{"type": "websocket.connect"}],
    )
    assert sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.parametrize("error", [RuntimeError("boom"), CloudError("boom")])
def test_an_unexpected_error_is_500_and_reraised(
    caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    """A bug (not bad input) answers 500 in the error shape, is logged without the tenant, and re-raised for the server."""

    class Broken(TenantManager):
        def get(self, tenant_id: str) -> Tenant:
            raise error

    api = AdminAPI(Broken(), admin_key_hashes=[hash_api_key(ADMIN_KEY)])
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(message: object) -> None:
        sent.append(dict(message))  # type: ignore[call-overload]

    scope = http_scope(
        "GET",
        "/admin/tenants/acme",
        [(b"authorization", f"Bearer {ADMIN_KEY}".encode())],
    )
    with pytest.raises(type(error), match="boom"):
        asyncio.run(api(scope, receive, send))
    assert sent[0]["status"] == 500
    body = json.loads(sent[1]["body"])  # type: ignore[arg-type]
    assert body["error"]["type"] == "server_error"
    assert "boom" not in body["error"]["message"]
    assert "admin API failed on GET /admin/tenants/{tenant}" in caplog.text


def test_repr_shows_no_secret(api: AdminAPI) -> None:
    """The repr counts admin keys and names SSO tenants, never a hash or secret."""
    text = repr(api)
    assert text == "<AdminAPI admin_keys=1 sessions=True sso=['acme'] oidc=[]>"
    assert SECRET.decode() not in text
