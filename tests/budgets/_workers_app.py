"""
The app served by ``uvicorn --workers 3`` in ``test_budget_concurrency.py``:
every worker opens the same LMDB folder (``ZC_TEST_DB``) and its upstream
app appends one line per call to ``ZC_TEST_CALLS``.
"""

from __future__ import annotations

import os
from typing import Any

from tests.budgets._support import PRICES, UsageApp
from zerfoo_cloud import CloudServer, TenantManager, TokenMeter
from zerfoo_cloud.stores.lmdb import LMDBStores


class _CountingApp(UsageApp):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        with open(os.environ["ZC_TEST_CALLS"], "a", encoding="utf-8") as calls:  # noqa: ASYNC230, PTH123 - one short append
            calls.write(f"{os.getpid()}\n")
        await super().__call__(scope, receive, send)


stores = LMDBStores.open(os.environ["ZC_TEST_DB"])
tenants = TenantManager(stores.tenants, limits=stores.limits)
meter = TokenMeter(stores.billing, prices=PRICES)
app = CloudServer(_CountingApp(delay=0.05), tenants, meter).handler()
