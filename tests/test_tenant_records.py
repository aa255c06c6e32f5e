"""
Tenant records sit below the services: stores persist them without
importing the tenants service, and the service re-exports them.
"""

from __future__ import annotations

import pytest

from tests.test_import_graph import EDGES
from zerfoo_cloud import tenant_records, tenants

BACKENDS = (
    "zerfoo_cloud.stores.memory",
    "zerfoo_cloud.stores.lmdb._tenants",
    "zerfoo_cloud.stores.protocols",
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stores_do_not_import_the_tenants_service(backend: str) -> None:
    targets = {edge.target for edge in EDGES if edge.source == backend}
    assert "zerfoo_cloud.tenant_records" in targets
    assert not any(
        t == "zerfoo_cloud.tenants" or t.startswith("zerfoo_cloud.tenants.")
        for t in targets
    )


def test_records_import_no_service() -> None:
    targets = {e.target for e in EDGES if e.source == "zerfoo_cloud.tenant_records"}
    assert targets <= {
        "zerfoo_cloud._redacted",
        "zerfoo_cloud.key_records",
        "zerfoo_cloud.budget_records",
    }


def test_key_records_import_only_budget_records() -> None:
    targets = {e.target for e in EDGES if e.source == "zerfoo_cloud.key_records"}
    assert targets <= {"zerfoo_cloud.budget_records"}


def test_budget_records_import_only_errors_and_money() -> None:
    targets = {e.target for e in EDGES if e.source == "zerfoo_cloud.budget_records"}
    assert targets <= {
        "zerfoo_cloud.errors",
        "zerfoo_cloud.pricing",
        "zerfoo_cloud.pricing._short",
        "zerfoo_cloud.pricing.currencies",
        "zerfoo_cloud.pricing.money",
    }


@pytest.mark.parametrize("name", tenant_records.__all__)
def test_the_service_re_exports_the_record_names(name: str) -> None:
    assert getattr(tenants, name) is getattr(tenant_records, name)
