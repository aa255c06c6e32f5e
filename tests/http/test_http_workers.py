"""
Two uvicorn worker processes sharing one LMDB folder enforce one request limit.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http._support import uvicorn_workers
from zerfoo_cloud import TenantConfig, TenantManager
from zerfoo_cloud.stores.lmdb import LMDBStores

pytestmark = pytest.mark.slow


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """uvicorn with two workers on one LMDB folder; yields (base URL, folder)."""
    db = tmp_path / "db"
    with uvicorn_workers(
        "tests.http._workers_app:app", 2, {"ZC_TEST_DB": str(db)}
    ) as base:
        yield base, db


def test_request_limit_holds_across_two_worker_processes(
    workers: tuple[str, Path],
) -> None:
    """With two workers on one LMDB folder, exactly the rate limit passes, not twice it."""
    base, db = workers
    stores = LMDBStores.open(db)
    try:
        tenants = TenantManager(stores.tenants, limits=stores.limits)
        tenants.create(
            TenantConfig("free", "free-key-0000000000", rate_limit=0, token_budget=0)
        )
        tenants.create(
            TenantConfig("limited", "limited-key-000000", rate_limit=10, token_budget=0)
        )
        pids = set()
        for _ in range(200):
            r = httpx.get(
                f"{base}/v1/models",
                headers={"x-api-key": "free-key-0000000000"},
                timeout=5,
            )
            pids.add(r.headers["x-worker-pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2, "both workers must be serving"

        def call(_: int) -> tuple[int, str]:
            r = httpx.get(
                f"{base}/v1/models",
                headers={"authorization": "Bearer limited-key-000000"},
                timeout=10,
            )
            return r.status_code, r.headers.get("x-worker-pid", "")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(40)))
        statuses = [status for status, _ in results]
        assert statuses.count(200) == 10
        assert statuses.count(429) == 30
        assert tenants.get("limited").request_quota().remaining == 0
    finally:
        stores.close()
