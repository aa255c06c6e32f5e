"""
Several keys per tenant through the HTTP layer: billing records carry the
id of the key that made the request (ASGI and WSGI), a key's model scope
refuses other models with 403 before the app runs, and an expired or
revoked key is refused with 401 ``invalid_api_key``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import httpx
import pytest

from tests.conftest import FakeClock
from tests.http._support import CHAT, KEY, chat
from tests.http.test_priced_requests import CountingApp
from tests.test_metering import ListRecorder
from zerfoo_cloud import (
    AuditLogger,
    CloudServer,
    TenantConfig,
    TenantManager,
    TokenMeter,
    UsageEvent,
)
from zerfoo_cloud.errors import UnauthorizedError
from zerfoo_cloud.http import CloudMiddleware, WSGICloudMiddleware
from zerfoo_cloud.http._policy import Policy, PolicyOptions
from zerfoo_cloud.stores.memory import (
    MemoryAuditStore,
    MemoryBillingStore,
    MemoryTenantStore,
)

T0 = 1_800_000_000.0


def _wsgi_app(environ: Any, start_response: Any) -> Iterable[bytes]:
    environ["wsgi.input"].read()
    body = json.dumps(
        {"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
def clock() -> FakeClock:
    """The clock of the tenants."""
    return FakeClock(T0)


@pytest.fixture
def tenants(clock: FakeClock) -> TenantManager:
    """acme, without limits, through a cache (as a server has)."""
    manager = TenantManager(clock=clock)
    manager.create(TenantConfig("acme", KEY, rate_limit=0, token_budget=0))
    return manager


def _server(app: CountingApp, tenants: TenantManager) -> CloudServer:
    return CloudServer(
        app,
        tenants,
        TokenMeter(MemoryBillingStore()),
        audit=AuditLogger(MemoryAuditStore()),
    )


async def _post(server: CloudServer, key: str, **body: Any) -> httpx.Response:
    handler = server.handler()
    assert isinstance(handler, CloudMiddleware)
    transport = httpx.ASGITransport(handler, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.post(CHAT, json=chat(**body), headers=_auth(key))


def test_billing_records_carry_the_key_id(tenants: TenantManager) -> None:
    """Each billing record names the key that made its request (ASGI)."""
    store = MemoryBillingStore()
    server = CloudServer(
        CountingApp(), tenants, TokenMeter(store), audit=AuditLogger(MemoryAuditStore())
    )
    secret, key = tenants.create_key("acme", name="ci")
    assert (asyncio.run(_post(server, KEY))).status_code == 200
    assert (asyncio.run(_post(server, secret))).status_code == 200
    assert server.close(10)
    first = tenants.list_keys("acme")[0].id
    assert sorted(r.key_id for r in store.all()) == sorted([first, key.id])


def test_wsgi_billing_records_carry_the_key_id(tenants: TenantManager) -> None:
    """The WSGI adapter bills the key id too."""
    store = MemoryBillingStore()
    server = CloudServer(
        _wsgi_app,
        tenants,
        TokenMeter(store),
        audit=AuditLogger(MemoryAuditStore()),
        interface="wsgi",
    )
    secret, key = tenants.create_key("acme", name="ci")
    handler = server.handler()
    assert isinstance(handler, WSGICloudMiddleware)
    with httpx.Client(
        transport=httpx.WSGITransport(handler), base_url="http://t"
    ) as client:
        assert client.post(CHAT, json=chat(), headers=_auth(secret)).status_code == 200
    assert server.close(10)
    (record,) = store.all()
    assert record.key_id == key.id


def test_a_scoped_key_is_refused_other_models_before_the_app(
    tenants: TenantManager,
) -> None:
    """A key scoped to one model gets 403 model_not_allowed for another; the app never sees it."""
    app = CountingApp()
    server = _server(app, tenants)
    secret, _ = tenants.create_key("acme", name="scoped", model_scope=("other-model",))
    refused = asyncio.run(_post(server, secret, model="toy-1"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert app.calls == 0
    # The tenant's unscoped key may use it.
    assert (asyncio.run(_post(server, KEY, model="toy-1"))).status_code == 200
    assert app.calls == 1
    assert server.close(10)


def test_expired_and_revoked_keys_get_401(
    tenants: TenantManager, clock: FakeClock
) -> None:
    """A key at its expiry, or revoked, is refused as an invalid key; the app never sees it."""
    app = CountingApp()
    server = _server(app, tenants)
    short, _ = tenants.create_key("acme", name="short", expires_at=T0 + 30)
    gone, gone_key = tenants.create_key("acme", name="gone")
    assert (asyncio.run(_post(server, short))).status_code == 200
    assert (asyncio.run(_post(server, gone))).status_code == 200
    tenants.revoke_key("acme", gone_key.id)
    clock.now = T0 + 30
    for key in (short, gone):
        refused = asyncio.run(_post(server, key))
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert key not in refused.text
    assert app.calls == 2
    assert (asyncio.run(_post(server, KEY))).status_code == 200
    assert server.close(10)


class _NetworkTenantStore(MemoryTenantStore):
    """A memory tenant store that says it waits on the network, as PostgreSQL's does."""

    blocking_io = True


def test_the_awaited_authentication_refuses_a_cached_key_past_its_expiry(
    clock: FakeClock,
) -> None:
    """With a store on the network, a key the cache holds is refused from its expiry on (the cache hit is checked too)."""
    manager = TenantManager(_NetworkTenantStore(), clock=clock, cache_ttl=1.0)
    manager.create(TenantConfig("acme", KEY, rate_limit=0, token_budget=0))
    secret, key = manager.create_key("acme", name="short", expires_at=T0 + 0.5)
    policy = Policy(manager, PolicyOptions(), clock=clock)
    assert policy.tenants_wait
    assert asyncio.run(policy.authenticate_async(secret)).key_id == key.id
    assert manager.cached_by_api_key(secret) is not None
    clock.advance(0.5)
    with pytest.raises(UnauthorizedError):
        asyncio.run(policy.authenticate_async(secret))
    assert asyncio.run(policy.authenticate_async(KEY)).id == "acme"


def test_usage_events_carry_the_key_id(tenants: TenantManager) -> None:
    """The usage event of a request names its key; an event without one keeps the old JSON form."""
    recorder = ListRecorder()
    meter = TokenMeter(MemoryBillingStore(), recorder=recorder)
    server = CloudServer(
        CountingApp(), tenants, meter, audit=AuditLogger(MemoryAuditStore())
    )
    secret, key = tenants.create_key("acme", name="ci")
    assert asyncio.run(_post(server, secret)).status_code == 200
    assert server.close(10)
    meter.close()
    (event,) = recorder.events
    assert event.key_id == key.id
    assert json.loads(event.to_json())["key_id"] == key.id
    old = UsageEvent("acme", "m", 1, 2, 3)
    assert old.to_json() == (
        '{"tenant_id":"acme","model":"m","prompt_tokens":1,'
        '"completion_tokens":2,"timestamp":3}'
    )
