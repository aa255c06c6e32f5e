"""
A second host for the key revocation tests: a spawned process with its own
`TenantManager` on a shared LMDB folder and one Redis (the module is
imported fresh in the child).
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from pathlib import Path

from zerfoo_cloud import TenantManager, TenantNotFoundError
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.redis import RedisKeyRevocations


def serve_lookups(
    folder: Path, url: str, prefix: str, subscribe: bool, pipe: Connection
) -> None:
    """
    Answer the parent over *pipe*: for each key received, look it up once
    (keeping it for the 1 s time to live), say ``"ready"``, then look it up
    every millisecond until it is refused and send the ``time.monotonic()``
    of the first refusal (the clock every process of the host shares).
    ``None`` ends it.

    With *subscribe*, the manager hears revocations on the Redis at *url*;
    without, only its time to live makes it notice.
    """
    stores = LMDBStores.open(folder)
    revocations = (
        RedisKeyRevocations.from_url(url, prefix=prefix) if subscribe else None
    )
    tenants = TenantManager(
        stores.tenants, limits=stores.limits, cache_ttl=1.0, revocations=revocations
    )
    deadline = time.monotonic() + 30
    while revocations is not None and not revocations.live:
        if time.monotonic() > deadline:
            msg = "the subscription never became live"
            raise RuntimeError(msg)
        time.sleep(0.01)
    pipe.send("live")
    while (key := pipe.recv()) is not None:
        tenants.get_by_api_key(key)
        pipe.send("ready")
        while True:
            try:
                tenants.get_by_api_key(key)
            except TenantNotFoundError:
                pipe.send(time.monotonic())
                break
            time.sleep(0.001)
    tenants.close()
    if revocations is not None:
        revocations.close()
    stores.close()
