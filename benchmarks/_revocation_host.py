"""
Two hosts on one LMDB folder and one Redis, for the key revocation
benchmark and its test: this process re-keys tenants, a spawned one (its
own `TenantManager`, keeping tenants for 1 s) spins on the old keys, and
each re-key is timed until the other process refuses the old key.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.connection import Connection
from pathlib import Path

from zerfoo_cloud import TenantConfig, TenantManager, TenantNotFoundError
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


def latencies(
    folder: Path, url: str, prefix: str, *, subscribe: bool, trials: int
) -> list[float]:
    """
    Re-key *trials* tenants in this process (publishing on the Redis at
    *url*), each while a spawned process (`serve_lookups`; subscribed or
    not) spins on its old key; return how long each took to be refused
    there, in seconds from the start of `TenantManager.rotate_key` (the
    LMDB commit included).
    """
    spawn = multiprocessing.get_context("spawn")
    stores = LMDBStores.open(folder)
    revocations = RedisKeyRevocations.from_url(url, prefix=prefix)
    tenants = TenantManager(
        stores.tenants, limits=stores.limits, revocations=revocations
    )
    ours, theirs = spawn.Pipe()
    child = spawn.Process(
        target=serve_lookups, args=(folder, url, prefix, subscribe, theirs)
    )
    child.start()
    try:
        if not ours.poll(60) or ours.recv() != "live":
            msg = "the second process did not start"
            raise RuntimeError(msg)
        took = []
        for trial in range(trials):
            key = f"zc-trial-{trial}-key-0123456789"
            tenants.create(TenantConfig(f"t{trial}", key, 0, 0))
            ours.send(key)
            if not ours.poll(10) or ours.recv() != "ready":
                msg = "the second process did not look the key up"
                raise RuntimeError(msg)
            started = time.monotonic()
            tenants.rotate_key(f"t{trial}")
            if not ours.poll(10):
                msg = "the old key was never refused"
                raise RuntimeError(msg)
            took.append(ours.recv() - started)
        ours.send(None)
        child.join(30)
        if child.exitcode != 0:
            msg = f"the second process failed ({child.exitcode})"
            raise RuntimeError(msg)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        tenants.close()
        revocations.close()
        stores.close()
    return took
