"""
The admin usage and audit routes keep answering for a deleted tenant whose
usage is still stored, marked ``deleted``, so month-end invoicing bills it.
"""

from __future__ import annotations

from tests.admin._client import Client
from tests.admin.conftest import admin_headers
from zerfoo_cloud import TenantConfig, TenantManager
from zerfoo_cloud.stores.memory import MemoryBillingStore

ADMIN = admin_headers()


def test_usage_of_a_deleted_tenant_is_still_reported(
    client: Client, tenants: TenantManager, billing_store: MemoryBillingStore
) -> None:
    """Bill acme, delete acme: /admin usage still shows its tokens, with deleted true; audit too."""
    meter = client.app.meter
    assert meter is not None
    meter.record("acme", 100, 20, model="llama")  # type: ignore[attr-defined]
    meter.record("acme", 1, 2, model="llama")  # type: ignore[attr-defined]
    live = client.get("/admin/tenants/acme/usage?by=", headers=ADMIN).json()
    assert live["deleted"] is False
    assert (
        client.request("DELETE", "/admin/tenants/acme", headers=ADMIN).status_code
        == 204
    )

    usage = client.get("/admin/tenants/acme/usage?by=", headers=ADMIN)
    assert usage.status_code == 200
    data = usage.json()
    assert data["deleted"] is True
    assert data["totals"] == live["totals"]
    assert data["totals"]["input_tokens"] == 101
    audit = client.get("/admin/tenants/acme/audit", headers=ADMIN)
    assert audit.status_code == 200
    assert audit.json()["deleted"] is True

    tenants.create(TenantConfig("acme", "zc-acme-again-0123456789abcdef", 1, 1))
    again = client.get("/admin/tenants/acme/usage?by=", headers=ADMIN).json()
    assert again["deleted"] is False
    assert again["totals"] == live["totals"]


def test_a_tenant_never_billed_nor_existing_is_still_404(client: Client) -> None:
    """An unknown id with no usage stored is 404, as before."""
    for suffix in ("usage", "audit"):
        response = client.get(f"/admin/tenants/nobody/{suffix}", headers=ADMIN)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "tenant_not_found"


def test_a_deleted_tenant_without_usage_is_404(
    client: Client, tenants: TenantManager
) -> None:
    """Deleting globex, which was never billed, leaves nothing to report: 404."""
    tenants.delete("globex")
    response = client.get("/admin/tenants/globex/usage", headers=ADMIN)
    assert response.status_code == 404
