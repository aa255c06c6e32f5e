"""
A process answering key lookups on a shared LMDB store, one per line:
reads an API key from stdin, writes ``ok KEY_ID`` or ``refused``.
"""

from __future__ import annotations

import sys

from zerfoo_cloud import TenantManager, TenantNotFoundError
from zerfoo_cloud.stores.lmdb import LMDBStores


def main(path: str) -> None:
    """Serve lookups on the store at *path* until stdin closes."""
    with LMDBStores.open(path) as stores:
        manager = TenantManager(stores.tenants, limits=stores.limits)
        print("ready", flush=True)
        for line in sys.stdin:
            print(_answer(manager, line.strip()), flush=True)


def _answer(manager: TenantManager, api_key: str) -> str:
    try:
        return "ok " + manager.get_by_api_key(api_key).key_id
    except TenantNotFoundError:
        return "refused"


if __name__ == "__main__":
    main(sys.argv[1])
