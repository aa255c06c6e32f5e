"""
Costs through the meter and the HTTP layer: each record priced once when it
is made, at the price of its moment, and a model without a price refused
before the app runs (ASGI, WSGI, and the policy's awaited path).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from toy_openai_app import make_app

from tests.http._support import AUTH, CHAT, KEY, chat
from tests.pricing._support import Clock
from tests.pricing._support import price_from as _price
from zerfoo_cloud import (
    AuditAction,
    AuditLogger,
    AuditResult,
    CloudServer,
    TenantConfig,
    TenantManager,
    TokenMeter,
)
from zerfoo_cloud.errors import UnpricedModelError
from zerfoo_cloud.http import CloudMiddleware, WSGICloudMiddleware
from zerfoo_cloud.http._policy import Policy, PolicyOptions
from zerfoo_cloud.http._types import Receive, Scope, Send
from zerfoo_cloud.pricing import PriceTable
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryAuditStore, MemoryBillingStore

T0 = datetime(2026, 11, 3, 12, 0, tzinfo=timezone.utc)
CHANGE = datetime(2026, 11, 15, tzinfo=timezone.utc)
EVER = (T0 - timedelta(days=365), T0 + timedelta(days=365))


#: toy-1 priced, its price changing mid-month; no default price.
PRICES = PriceTable(
    "USD",
    {
        "toy-1": [
            _price(T0 - timedelta(days=30), "0.15", "0.60"),
            _price(CHANGE, "0.10", "0.40"),
        ]
    },
)


class CountingApp:
    """A real ASGI app (the toy model) that counts the requests reaching it."""

    def __init__(self) -> None:
        self.calls = 0
        self.app = make_app()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.app(scope, receive, send)


class CountingWSGIApp:
    """A WSGI app answering with a usage block, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        environ["wsgi.input"].read()
        body = json.dumps(
            {"usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}
        ).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


@pytest.fixture
def tenants() -> TenantManager:
    """One tenant, acme, without limits."""
    manager = TenantManager()
    manager.create(TenantConfig("acme", KEY, rate_limit=0, token_budget=0))
    return manager


def _server(
    app: Any, tenants: TenantManager, meter: TokenMeter, audit: AuditLogger
) -> CloudServer:
    return CloudServer(app, tenants, meter, audit=audit)


async def _post(
    server: CloudServer, body: dict[str, Any], path: str = CHAT
) -> httpx.Response:
    handler = server.handler()
    assert isinstance(handler, CloudMiddleware)
    transport = httpx.ASGITransport(handler, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.post(path, json=body, headers=AUTH)


async def _get(server: CloudServer, path: str) -> httpx.Response:
    handler = server.handler()
    assert isinstance(handler, CloudMiddleware)
    transport = httpx.ASGITransport(handler, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.get(path, headers=AUTH)


# -- the meter ----------------------------------------------------------------


def test_the_meter_prices_each_record_at_its_own_moment() -> None:
    """Records before and after a price change carry the price of their moment; a later table never rewrites them."""
    clock = Clock(T0)
    store = MemoryBillingStore()
    meter = TokenMeter(store, prices=PRICES, clock=clock)
    before = meter.record("acme", 1_000_000, 1_000_000, model="toy-1", request_id="a")
    clock.set(CHANGE - timedelta(microseconds=1))
    last = meter.record("acme", 1_000_000, 0, model="toy-1", request_id="b")
    clock.set(CHANGE)
    after = meter.record("acme", 1_000_000, 1_000_000, model="toy-1", request_id="c")
    assert (before.cost, before.currency) == (750_000, "USD")
    assert last.cost == 150_000
    assert (after.cost, after.currency) == (500_000, "USD")
    # A new price table (a price change) for a new meter: past records stay.
    free = CHANGE + timedelta(days=1)
    cheaper = PRICES.with_price("toy-1", _price(free, "0", "0"))
    clock.set(free)
    TokenMeter(store, prices=cheaper, clock=clock).record(
        "acme", 5, 5, model="toy-1", request_id="d"
    )
    costs = {r.request_id: r.cost for r in store.all()}
    assert costs == {"a": 750_000, "b": 150_000, "c": 500_000, "d": 0}
    meter.close()


def test_a_meter_without_prices_records_no_cost() -> None:
    """Without a table, records carry cost 0 and no currency, as before."""
    meter = TokenMeter(MemoryBillingStore())
    record = meter.record("acme", 10, 10, model="anything", key_id="k-1")
    assert (record.cost, record.currency, record.key_id) == (0, "", "k-1")
    assert meter.prices is None
    meter.close()


def test_an_unpriced_model_recorded_directly_is_kept_unpriced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A direct caller recording a model the table cannot price loses nothing: cost 0, no currency, counted and logged."""
    meter = TokenMeter(MemoryBillingStore(), prices=PRICES, clock=Clock(T0))
    record = meter.record("acme", 10, 10, model="no-such-model")
    assert (record.cost, record.currency) == (0, "")
    assert meter.unpriced_records == 1
    assert "no-such-model" in caplog.text
    meter.close()


def test_costs_reach_the_lmdb_writer_process(tmp_path: Path) -> None:
    """The fields the serving process sends the writer process carry the cost it computed."""
    clock = Clock(T0)
    with LMDBStores.open(tmp_path / "db", writer_process=True) as stores:
        meter = TokenMeter(stores.billing, prices=PRICES, clock=clock)
        meter.record_request("acme", 2_000_000, 0, model="toy-1", request_id="x")
        clock.set(CHANGE)
        meter.record_request(
            "acme", 2_000_000, 0, model="toy-1", request_id="y", key_id="k9"
        )
        meter.record_request("acme", 1, 1, model="unknown", request_id="z")
        meter.flush()
        found = meter.query("acme", *EVER)
        meter.close()
    assert [(r.request_id, r.cost, r.currency, r.key_id) for r in found] == [
        ("x", 300_000, "USD", ""),
        ("y", 200_000, "USD", "k9"),
        ("z", 0, "", ""),
    ]


# -- the HTTP layer -----------------------------------------------------------


def test_a_priced_request_is_billed_its_cost(tenants: TenantManager) -> None:
    """A request through CloudServer and a real app leaves a record whose cost is the table's for its tokens and moment."""
    store = MemoryBillingStore()
    meter = TokenMeter(store, prices=PRICES, clock=Clock(T0))
    app = CountingApp()
    server = _server(app, tenants, meter, AuditLogger(MemoryAuditStore()))
    response = asyncio.run(_post(server, chat()))
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert server.close(10)
    (record,) = store.all()
    expected = PRICES.cost_of(
        "toy-1", usage["prompt_tokens"], usage["completion_tokens"], when=T0
    )
    assert expected > 0
    assert (record.cost, record.currency) == (expected, "USD")
    assert app.calls == 1


@pytest.mark.parametrize("model", ["other-model", ""])
def test_an_unpriced_model_is_refused_before_the_app(
    tenants: TenantManager, model: str
) -> None:
    """A model the table cannot price (or one the app would choose, with no default price) gets 403 model_not_priced; the app never runs, nothing is billed, the refusal is audited."""
    store = MemoryBillingStore()
    audit_store = MemoryAuditStore()
    meter = TokenMeter(store, prices=PRICES, clock=Clock(T0))
    app = CountingApp()
    server = _server(app, tenants, meter, AuditLogger(audit_store))
    if model:
        response = asyncio.run(_post(server, chat(model=model)))
    else:  # moderations: the app picks the model
        response = asyncio.run(_post(server, {"input": "hi"}, "/v1/moderations"))
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["code"], error["param"], error["type"]) == (
        "model_not_priced",
        "model",
        "invalid_request_error",
    )
    assert server.close(10)
    assert app.calls == 0
    assert store.all() == []
    (entry,) = audit_store.all()
    assert (entry.action, entry.result, entry.status_code) == (
        AuditAction.INFERENCE,
        AuditResult.DENIED,
        403,
    )


def test_a_request_using_no_model_is_not_refused(tenants: TenantManager) -> None:
    """Listing models names no model: it passes without a default price, and its record is unpriced and not counted as an unpriced model."""
    store = MemoryBillingStore()
    meter = TokenMeter(store, prices=PRICES, clock=Clock(T0))
    server = _server(CountingApp(), tenants, meter, AuditLogger(MemoryAuditStore()))
    response = asyncio.run(_get(server, "/v1/models"))
    assert response.status_code == 200
    assert server.close(10)
    assert [(r.model, r.cost, r.currency) for r in store.all()] == [("", 0, "")]
    assert meter.unpriced_records == 0


def test_a_default_price_lets_every_model_through(tenants: TenantManager) -> None:
    """With a default price, a model without its own is served and billed at the default."""
    table = PriceTable("EUR", {}, default=[_price(T0 - timedelta(days=1), "1", "1")])
    store = MemoryBillingStore()
    meter = TokenMeter(store, prices=table, clock=Clock(T0))
    server = _server(CountingApp(), tenants, meter, AuditLogger(MemoryAuditStore()))
    response = asyncio.run(_post(server, chat(model="toy-1")))
    assert response.status_code == 200
    assert server.close(10)
    (record,) = store.all()
    assert record.currency == "EUR"
    assert record.cost == record.total_tokens  # 1 per million = 1 micro-unit each


def test_the_wsgi_path_refuses_an_unpriced_model(tenants: TenantManager) -> None:
    """The WSGI adapter refuses the same way, and bills a priced model."""
    store = MemoryBillingStore()
    meter = TokenMeter(store, prices=PRICES, clock=Clock(T0))
    app = CountingWSGIApp()
    server = CloudServer(
        app, tenants, meter, audit=AuditLogger(MemoryAuditStore()), interface="wsgi"
    )
    handler = server.handler()
    assert isinstance(handler, WSGICloudMiddleware)
    with httpx.Client(
        transport=httpx.WSGITransport(handler), base_url="http://t"
    ) as client:
        refused = client.post(CHAT, json=chat(model="other"), headers=AUTH)
        served = client.post(CHAT, json=chat(), headers=AUTH)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_priced"
    assert served.status_code == 200
    assert app.calls == 1
    assert server.close(10)
    (record,) = store.all()
    assert record.cost == PRICES.cost_of("toy-1", 11, 7, when=T0)


def test_the_awaited_admission_refuses_an_unpriced_model(
    tenants: TenantManager,
) -> None:
    """Policy.admit_async (the path of network limiter stores) checks the price before it takes anything."""
    policy = Policy(tenants, PolicyOptions(), prices=PRICES, clock=Clock(T0))
    tenant = tenants.get_by_api_key(KEY)
    info = policy.inspect("POST", CHAT, json.dumps(chat(model="other")).encode())
    with pytest.raises(UnpricedModelError):
        asyncio.run(policy.admit_async(tenant, info))
    with pytest.raises(UnpricedModelError):
        policy.admit(tenant, info)
    ticket = asyncio.run(
        policy.admit_async(
            tenant, policy.inspect("POST", CHAT, json.dumps(chat()).encode())
        )
    )
    assert ticket.info.model == "toy-1"


def test_a_model_priced_only_from_later_is_refused_until_then(
    tenants: TenantManager,
) -> None:
    """A price that takes effect later does not admit the model before its date."""
    table = PRICES.with_price("new-model", _price(CHANGE, "1", "1"))
    clock = Clock(CHANGE - timedelta(seconds=1))
    store = MemoryBillingStore()
    meter = TokenMeter(store, prices=table, clock=clock)
    server = _server(CountingApp(), tenants, meter, AuditLogger(MemoryAuditStore()))
    assert asyncio.run(_post(server, chat(model="new-model"))).status_code == 403
    clock.set(CHANGE)
    assert asyncio.run(_post(server, chat(model="new-model"))).status_code == 200
    assert server.close(10)
    assert [r.currency for r in store.all()] == ["USD"]
