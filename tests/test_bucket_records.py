"""
Bucket records and their arithmetic sit below the services: store backends
use them without importing the limits service, and the service re-exports
them.
"""

from __future__ import annotations

import pytest

from tests.test_import_graph import EDGES
from zerfoo_cloud import buckets, limits

BACKENDS = (
    "zerfoo_cloud.stores.memory",
    "zerfoo_cloud.stores._lmdb_limits",
    "zerfoo_cloud.stores.protocols",
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stores_do_not_import_the_limits_service(backend: str) -> None:
    targets = {edge.target for edge in EDGES if edge.source == backend}
    assert "zerfoo_cloud.buckets" in targets
    assert "zerfoo_cloud.limits" not in targets


def test_bucket_records_import_nothing_of_the_package() -> None:
    targets = {e.target for e in EDGES if e.source == "zerfoo_cloud.buckets"}
    assert targets == set()


@pytest.mark.parametrize("name", [*buckets.__all__, "EPSILON"])
def test_the_service_re_exports_the_bucket_names(name: str) -> None:
    assert getattr(limits, name) is getattr(buckets, name)
