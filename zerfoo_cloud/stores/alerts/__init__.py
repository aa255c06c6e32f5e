"""
Alert outboxes: where `zerfoo_cloud.alerts.Alerts` keeps each event's
deliveries to webhook endpoints until they went, or gave up.

`AlertOutbox` is the contract; `MemoryAlertOutbox` keeps deliveries in
memory (tests, development), `LMDBAlertOutbox` in an LMDB environment of
its own, on the host's disk: every change is one fsynced transaction, so
queued deliveries survive a restart or a crash, and the processes of one
host share it.
"""

from __future__ import annotations

from zerfoo_cloud.stores.alerts._lmdb import LMDBAlertOutbox
from zerfoo_cloud.stores.alerts._memory import MemoryAlertOutbox
from zerfoo_cloud.stores.alerts._protocol import OUTCOMES, AlertOutbox

__all__ = ["OUTCOMES", "AlertOutbox", "LMDBAlertOutbox", "MemoryAlertOutbox"]
