"""
CloudServer with the admin API and metrics mounted beside the tenant policy.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from toy_openai_app import make_app

from tests.http._support import json_body, wsgi_json_app
from zerfoo_cloud import (
    CloudServer,
    InvalidConfigError,
    ResourceManager,
    TenantConfig,
    TenantManager,
    TokenMeter,
)
from zerfoo_cloud.http.admin import AdminAPI
from zerfoo_cloud.metrics import Metrics
from zerfoo_cloud.stores.memory import MemoryBillingStore
from zerfoo_cloud.tenants import hash_api_key

ADMIN_KEY = "admin-key-0123456789abcdef"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """
    Parse an exposition into {(sample name, sorted labels): value}.
    """
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def build(**kw: Any) -> tuple[CloudServer, TenantManager, Metrics]:
    """
    A CloudServer around the toy app with admin and metrics, and its parts.
    """
    tenants = TenantManager()
    tenants.create(
        TenantConfig("acme", "acme-key", 2, 10_000, model_allow_list=["toy-1"])
    )
    metrics = Metrics(registry=CollectorRegistry())
    meter = TokenMeter(MemoryBillingStore())
    admin = AdminAPI(tenants, meter=meter, admin_key_hashes=[hash_api_key(ADMIN_KEY)])
    server = CloudServer(make_app(), tenants, meter, admin=admin, metrics=metrics, **kw)
    return server, tenants, metrics


async def exchange(
    server: CloudServer, *calls: tuple[str, str, dict[str, Any]]
) -> list[httpx.Response]:
    """
    Send each (method, path, kwargs) call to the server in order.
    """
    transport = httpx.ASGITransport(app=server.handler())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [await client.request(m, p, **kw) for m, p, kw in calls]


def chat(model: str = "toy-1") -> dict[str, Any]:
    """
    Keyword arguments of one chat completion request as tenant acme.
    """
    return {
        "headers": {"Authorization": "Bearer acme-key"},
        "json": {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4,
        },
    }


def test_metrics_count_every_outcome() -> None:
    """Successes, 403, 429 and 401 each show up under their result and limit."""
    server, _, _ = build()
    responses = asyncio.run(
        exchange(
            server,
            ("POST", "/v1/chat/completions", chat()),
            ("POST", "/v1/chat/completions", chat("toy-2")),
            ("POST", "/v1/chat/completions", chat()),
            ("POST", "/v1/chat/completions", chat()),
            (
                "POST",
                "/v1/chat/completions",
                {"headers": {"Authorization": "Bearer nope"}, "json": {}},
            ),
            ("GET", "/metrics", {}),
        )
    )
    assert [r.status_code for r in responses] == [200, 403, 200, 429, 401, 200]
    found = samples(responses[-1].text)
    ok = (
        "zerfoo_cloud_requests_total",
        (("model", "toy-1"), ("result", "success"), ("tenant", "acme")),
    )
    assert found[ok] == 2
    limited = (
        "zerfoo_cloud_limiter_rejections_total",
        (("limit", "requests"), ("tenant", "acme")),
    )
    assert found[limited] == 1
    assert (
        found[
            (
                "zerfoo_cloud_limiter_rejections_total",
                (("limit", "model"), ("tenant", "acme")),
            )
        ]
        == 1
    )
    unauthorized = [
        k
        for k in found
        if k[0] == "zerfoo_cloud_requests_total" and ("result", "unauthorized") in k[1]
    ]
    assert unauthorized
    assert found[("zerfoo_cloud_in_flight_requests", (("tenant", "acme"),))] == 0
    usage = responses[0].json()["usage"]
    tokens = (
        "zerfoo_cloud_tokens_total",
        (("direction", "completion"), ("model", "toy-1"), ("tenant", "acme")),
    )
    assert found[tokens] == 2 * usage["completion_tokens"]


def test_admin_api_is_mounted() -> None:
    """/admin routes reach the admin API, guarded by the admin key; other paths stay tenant-only."""
    server, _, _ = build()
    admin = {"headers": {"Authorization": f"Bearer {ADMIN_KEY}"}}
    listed, denied, as_tenant = asyncio.run(
        exchange(
            server,
            ("GET", "/admin/tenants", admin),
            ("GET", "/admin/tenants", {}),
            (
                "POST",
                "/v1/chat/completions",
                {"headers": {"Authorization": f"Bearer {ADMIN_KEY}"}, "json": {}},
            ),
        )
    )
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()["data"]] == ["acme"]
    assert denied.status_code == 401
    assert as_tenant.status_code == 401, "the admin key is not a tenant key"


def test_resource_gauges_are_tracked() -> None:
    """A ResourceManager given to CloudServer shows in the metrics."""
    rm = ResourceManager(1000)
    rm.load("toy-1", 400)
    server, _, _ = build(resources=rm)
    (response,) = asyncio.run(exchange(server, ("GET", "/metrics", {})))
    found = samples(response.text)
    assert found[("zerfoo_cloud_gpu_memory_used_bytes", ())] == 400
    assert found[("zerfoo_cloud_gpu_memory_budget_bytes", ())] == 1000


def test_admin_needs_an_asgi_app() -> None:
    """Mounting the admin API on a WSGI app is refused with a clear error."""
    tenants = TenantManager()
    with pytest.raises(InvalidConfigError, match="ASGI"):
        CloudServer(
            wsgi_json_app(json_body({"prompt_tokens": 1, "completion_tokens": 1})),
            tenants,
            TokenMeter(MemoryBillingStore()),
            admin=AdminAPI(tenants),
        )


def test_wsgi_metrics_path() -> None:
    """A WSGI CloudServer serves /metrics too, and counts its requests."""
    tenants = TenantManager()
    tenants.create(TenantConfig("acme", "acme-key", 0, 0))
    metrics = Metrics(registry=CollectorRegistry())
    server = CloudServer(
        wsgi_json_app(json_body({"prompt_tokens": 3, "completion_tokens": 4})),
        tenants,
        TokenMeter(MemoryBillingStore()),
        metrics=metrics,
    )
    with httpx.Client(
        transport=httpx.WSGITransport(app=server.handler()), base_url="http://test"
    ) as client:
        assert (
            client.post(
                "/v1/chat/completions",
                headers={"Authorization": "Bearer acme-key"},
                json={"model": "m"},
            ).status_code
            == 200
        )
        page = client.get("/metrics")
        assert client.post("/metrics").status_code == 405
    assert page.status_code == 200
    found = samples(page.text)
    assert (
        found[
            (
                "zerfoo_cloud_tokens_total",
                (("direction", "prompt"), ("model", "m"), ("tenant", "acme")),
            )
        ]
        == 3
    )
