"""
The alert records: what one alert event holds (`AlertEvent`) and what an
alert outbox keeps of its delivery to one endpoint (`Delivery`, `Attempt`).

They sit below the alert outbox stores (`zerfoo_cloud.stores.alerts`) and
the alert service (`zerfoo_cloud.alerts`, which re-exports every name
here): both import them, and they import neither.
"""

from __future__ import annotations

from zerfoo_cloud.alert_records.delivery import (
    Attempt,
    Delivery,
    OutboxCounts,
    oldest_first,
)
from zerfoo_cloud.alert_records.event import (
    EVENT_TYPES,
    AlertEvent,
    deterministic_event_id,
    random_event_id,
)

__all__ = [
    "EVENT_TYPES",
    "AlertEvent",
    "Attempt",
    "Delivery",
    "OutboxCounts",
    "deterministic_event_id",
    "oldest_first",
    "random_event_id",
]
