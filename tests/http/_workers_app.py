"""
The app served by ``uvicorn --workers 2`` in ``test_http_workers.py``: every
worker opens the same LMDB folder (``ZC_TEST_DB``).
"""

from __future__ import annotations

import os
from typing import Any

from zerfoo_cloud import CloudServer, TenantManager, TokenMeter
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryBillingStore


async def _pid_app(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"x-worker-pid", str(os.getpid()).encode())],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


stores = LMDBStores.open(os.environ["ZC_TEST_DB"])
tenants = TenantManager(stores.tenants, limits=stores.limits)
app = CloudServer(_pid_app, tenants, TokenMeter(MemoryBillingStore())).handler()
