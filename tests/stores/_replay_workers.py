"""
Functions run in child processes by the replay cache tests (spawn).
"""

from __future__ import annotations

from pathlib import Path

from zerfoo_cloud.stores.lmdb import LMDBStores


def add_in_child(path: str, key: str, expires_at: float, now: float) -> bool:
    """
    Open the LMDB store at *path*, add *key* to its replay cache, return the result.
    """
    stores = LMDBStores.open(Path(path))
    try:
        return stores.replay.add(key, expires_at, now)
    finally:
        stores.close()
