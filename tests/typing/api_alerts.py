"""
Checked by mypy only: the alert outboxes satisfy `AlertOutbox`, and the
metrics and budget events fit the alert service's Protocols.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from zerfoo_cloud.alerts import AlertWatcher, BudgetEventLike
from zerfoo_cloud.budgets import BudgetEvent
from zerfoo_cloud.metrics import AlertMetrics
from zerfoo_cloud.stores.alerts import AlertOutbox, LMDBAlertOutbox, MemoryAlertOutbox


def check(lmdb: LMDBAlertOutbox, event: BudgetEvent) -> None:
    """
    Assign each implementation to its protocol type.
    """
    outboxes: list[AlertOutbox] = [MemoryAlertOutbox(), lmdb]
    watcher: AlertWatcher = AlertMetrics(CollectorRegistry())
    budget: BudgetEventLike = event
    del outboxes, watcher, budget
