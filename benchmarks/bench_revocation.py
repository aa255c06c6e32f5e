"""
How soon a key re-keyed on one host is refused on another: two processes
on one LMDB folder and the Redis on 127.0.0.1:6379 (skipped with a line when
it is not running), the second keeping tenants for 1 s.

50 re-keys with key revocations (Redis publish/subscribe), against the
baseline measured in the same run: the same two processes without them,
where only the 1 s time to live ends the old key (3 re-keys: each takes the
whole time to live).
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

from benchmarks._revocation_host import latencies
from zerfoo_cloud.errors import StoreError
from zerfoo_cloud.stores.redis import RedisKeyRevocations

REDIS_URL = "redis://127.0.0.1:6379/0"
PREFIX = f"zc-bench-revocation:{os.getpid()}:"


def _line(name: str, took: list[float]) -> str:
    cuts = statistics.quantiles(took, n=100, method="inclusive")
    return (
        f"   {name:<40} p50 {cuts[49] * 1000:8.2f} ms   p99 {cuts[98] * 1000:8.2f} ms"
        f"   max {max(took) * 1000:8.2f} ms   ({len(took)} re-keys)"
    )


def main() -> None:
    """
    Print the revocation latency with and without key revocations.
    """
    probe = RedisKeyRevocations.from_url(REDIS_URL, prefix=PREFIX)
    try:
        probe.publish("probe")
    except StoreError as exc:
        print(f"   skipped: Redis on 127.0.0.1:6379 is not reachable ({exc})")
        return
    finally:
        probe.close()
    with tempfile.TemporaryDirectory() as folder:
        took = latencies(
            Path(folder) / "with", REDIS_URL, PREFIX, subscribe=True, trials=50
        )
        baseline = latencies(
            Path(folder) / "without", REDIS_URL, PREFIX, subscribe=False, trials=3
        )
    print(_line("re-key refused elsewhere, revocations", took))
    print(_line("baseline: time to live only (1 s)", baseline))
