"""
Bucket records and their arithmetic sit below the services: store backends
use them without importing the limits service, and the service re-exports
them.
"""

from __future__ import annotations

import pytest

from tests.test_import_graph import EDGES
from zerfoo_cloud import buckets, limits


def test_no_store_imports_the_limits_service() -> None:
    importers = {e.source for e in EDGES if e.target == "zerfoo_cloud.limits"}
    assert sorted(m for m in importers if m.startswith("zerfoo_cloud.stores")) == []


def test_the_counter_stores_use_the_bucket_records() -> None:
    users = {e.source for e in EDGES if e.target == "zerfoo_cloud.buckets"}
    assert users >= {
        "zerfoo_cloud.limits",
        "zerfoo_cloud.stores.memory",
        "zerfoo_cloud.stores.lmdb._limits",
        "zerfoo_cloud.stores.protocols",
    }


def test_bucket_records_import_nothing_of_the_package() -> None:
    assert not [e for e in EDGES if e.source == "zerfoo_cloud.buckets"]


@pytest.mark.parametrize("name", [*buckets.__all__, "EPSILON"])
def test_the_service_re_exports_the_bucket_names(name: str) -> None:
    assert getattr(limits, name) is getattr(buckets, name)
