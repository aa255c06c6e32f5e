"""
A process answering key lookups on a shared LMDB store, one per line:
reads an API key from stdin, writes ``ok KEY_ID`` or ``refused``. A line
``admit KEY`` starts a request of no tokens with that key (kept in
flight), and ``end KEY`` finishes one: the answer is ``allowed``,
``refused by key`` or ``refused by tenant``, and ``ended``.

With a second argument (a counters URL: Redis), the limits and the key
revocations live there, and keys found stay cached for a second (the
longest cache time): a key revoked elsewhere and refused here sooner was
refused because the revocation's message arrived.
"""

from __future__ import annotations

import sys

from zerfoo_cloud import Tenant, TenantManager, TenantNotFoundError
from zerfoo_cloud.stores.open import open_stores


def main(path: str, counters: str | None = None) -> None:
    """Serve lookups on the store at *path* until stdin closes."""
    with open_stores(path, counters) as stores:
        manager = TenantManager(
            stores.tenants,
            limits=stores.limits,
            revocations=stores.revocations if counters else None,
            cache_ttl=1.0 if counters else 0.5,
        )
        print("ready", flush=True)
        for line in sys.stdin:
            command, _, key = line.strip().rpartition(" ")
            print(_answer(manager, command, key), flush=True)
        manager.close()


def _answer(manager: TenantManager, command: str, api_key: str) -> str:
    try:
        tenant = manager.get_by_api_key(api_key)
    except TenantNotFoundError:
        return "refused"
    if command == "admit":
        return _admitted(tenant)
    if command == "end":
        tenant.end_request(0, 0)
        return "ended"
    return "ok " + tenant.key_id


def _admitted(tenant: Tenant) -> str:
    admission = tenant.begin_request(0)
    if admission.allowed:
        return "allowed"
    return "refused by key" if admission.refused_by_key else "refused by tenant"


if __name__ == "__main__":
    main(*sys.argv[1:])
