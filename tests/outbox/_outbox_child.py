"""
Child processes of the outbox process tests.

Run as ``python -m tests.outbox._outbox_child MODE ROOT [ARGS...]``: the
primary's files are under ``ROOT/primary``, the outbox at ``ROOT/outbox``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.outbox._primaries import open_primary
from zerfoo_cloud.audit import AuditEntry, AuditLogger
from zerfoo_cloud.metering import TokenMeter
from zerfoo_cloud.stores.outbox import Outbox, OutboxAuditStore, OutboxBillingStore

SECRET = b"k" * 32


def fill(root: Path, records: int, entries: int) -> None:
    """
    Record and log through the outbox stores, flush, say so, then wait to
    be killed.
    """
    primary = open_primary("lmdb", root / "primary")
    outbox = Outbox.open(root / "outbox", first_retry=0.01, max_retry=0.05)
    meter = TokenMeter(OutboxBillingStore(primary.billing, outbox), max_batch=64)
    logger = AuditLogger(
        OutboxAuditStore(primary.audit, outbox), secret=SECRET, max_batch=7
    )
    for i in range(records):
        meter.record("acme", i, 1, request_id=f"r{i}")
    for i in range(entries):
        logger.log(AuditEntry(tenant_id="acme", path=f"/v1/{i}"))
    meter.flush()
    logger.flush()
    print("flushed", flush=True)
    time.sleep(60)  # the parent kills us long before


def drain(root: Path) -> None:
    """
    Open the outbox as a restarted host does, make a logger (which hands
    over its link), wait until the outbox is empty, print its depth.
    """
    primary = open_primary("lmdb", root / "primary")
    outbox = Outbox.open(root / "outbox", first_retry=0.01, max_retry=0.05)
    billing = OutboxBillingStore(primary.billing, outbox)
    audit = OutboxAuditStore(primary.audit, outbox)
    logger = AuditLogger(audit, secret=SECRET)
    emptied = outbox.wait_empty(30)
    print(json.dumps({"empty": emptied, "depth": list(outbox.depth())}), flush=True)
    logger.close()
    billing.close()
    audit.close()
    outbox.close()
    primary.close()


if __name__ == "__main__":
    mode, root = sys.argv[1], Path(sys.argv[2])
    if mode == "fill":
        fill(root, int(sys.argv[3]), int(sys.argv[4]))
    else:
        drain(root)
