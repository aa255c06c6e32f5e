"""
Tenants and their limits on the embedded LMDB store, without a server.

Run it with ``.venv/bin/python examples/tenants_and_limits.py``. It creates a store in a temporary folder, adds two
tenants, and shows each limit at work: the request rate, the token budget
(reserve, then reconcile with the real usage), concurrency, the model allow
list, and key rotation. A second process sharing the same store shows that
limits hold across worker processes.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path

from zerfoo_cloud import (
    TenantConfig,
    TenantManager,
    TenantNotFoundError,
    generate_api_key,
)
from zerfoo_cloud.stores.lmdb import LMDBStores


def spend_in_another_process(path: str, api_key: str, attempts: int, now: float) -> int:
    """
    Open the same store in a new process and try *attempts* requests at the
    instant *now*.
    """
    with LMDBStores.open(path) as stores:
        manager = TenantManager(stores.tenants, limits=stores.limits, clock=lambda: now)
        tenant = manager.get_by_api_key(api_key)
        return sum(tenant.allow_request() for _ in range(attempts))


def main() -> None:
    """
    Walk through every limit and print what happens.
    """
    folder = Path(tempfile.mkdtemp(prefix="zerfoo-demo-")) / "store"
    print(f"store: {folder}")
    with LMDBStores.open(folder) as stores:
        manager = TenantManager(stores.tenants, limits=stores.limits)
        acme_key, globex_key = generate_api_key(), generate_api_key()
        manager.create(
            TenantConfig(
                "acme",
                acme_key,
                rate_limit=5,
                token_budget=1_000,
                max_concurrent_requests=2,
                model_allow_list=["llama-3-8b"],
            )
        )
        manager.create(TenantConfig("globex", globex_key, 100, 50_000))
        print(f"tenants: {[c.id for c in manager.list()]} (keys stored as hashes only)")

        acme = manager.get_by_api_key(acme_key)
        print("\n-- request rate: 5 per minute, refilled continuously")
        for i in range(7):
            d = acme.acquire_request()
            verdict = "ok" if d.allowed else f"refused, retry in {d.retry_after:.0f}s"
            print(f"request {i + 1}: {verdict} (remaining {d.remaining})")

        globex = manager.get_by_api_key(globex_key)
        print("\n-- token budget: reserve before, reconcile after")
        admission = globex.admit(2_000)
        print(f"reserve 2000 tokens: allowed={admission.allowed}")
        globex.refund_tokens(2_000 - 740)
        print(f"used 740, refunded 1260: remaining {globex.token_quota().remaining}")
        refused = globex.admit(60_000)
        print(f"reserve 60000 (over the budget): refused by {refused.refused_by}")

        print("\n-- concurrency: 2 in flight at most")
        print(
            [acme.allow_concurrent() for _ in range(3)], "in flight:", acme.in_flight()
        )
        acme.release_concurrent()
        acme.release_concurrent()

        print("\n-- model allow list")
        for model in ("llama-3-8b", "gpt-4o"):
            print(f"{model}: {'allowed' if acme.model_allowed(model) else 'denied'}")

        print("\n-- key rotation")
        new_key = manager.rotate_key("acme")
        try:
            manager.get_by_api_key(acme_key)
        except TenantNotFoundError:
            print("old key: refused")
        print(f"new key works: {manager.get_by_api_key(new_key).id}")

        print("\n-- limits hold across processes (globex: 100 per minute)")
        # Both processes read one frozen instant, so the bucket does not refill
        # while the second one starts and the sum is exact. A server keeps the
        # default clock, time.time.
        now = time.time()
        frozen = TenantManager(stores.tenants, limits=stores.limits, clock=lambda: now)
        globex = frozen.get_by_api_key(globex_key)
        left = globex.request_quota().remaining
        spent_here = sum(globex.allow_request() for _ in range(60))
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            spent_there = pool.apply(
                spend_in_another_process, (str(folder), globex_key, 100, now)
            )
        print(
            f"{left} requests left; this process spent {spent_here}, another "
            f"process {spent_there}: together {spent_here + spent_there}"
        )


if __name__ == "__main__":
    main()
