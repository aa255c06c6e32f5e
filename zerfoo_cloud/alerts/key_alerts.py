"""
Alerts about API keys: `key_alert` turns a `TenantManager` key event into
an `AlertEvent` (``key.created``, ``key.updated``, ``key.revoked``,
``key.rotated``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.alert_records import AlertEvent, random_event_id

if TYPE_CHECKING:
    from zerfoo_cloud.key_records import KeyRecord
    from zerfoo_cloud.tenants.key_events import KeyEvent

__all__ = ["key_alert", "key_data"]


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def key_data(key: KeyRecord) -> dict[str, Any]:
    """
    What an alert tells of *key*: its id, name, visible prefix, when it
    was made, expires and was revoked (ISO 8601, UTC, or ``null``), its
    model scope and its own limits (0: none). Never the key or its hash.
    """
    return {
        "key_id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": _iso(key.created_at),
        "expires_at": _iso(key.expires_at),
        "revoked_at": _iso(key.revoked_at),
        "model_scope": list(key.model_scope),
        **key.limits(),
    }


def key_alert(event: KeyEvent) -> AlertEvent:
    """
    The alert of *event*: type ``key.`` and its kind, a new random id (a
    key event happens once), *data* `key_data` of the key and, for
    ``key.rotated``, ``previous`` (the rotated key's `key_data`; for
    ``key.updated``, the key's before the change).
    """
    data = key_data(event.key)
    if event.previous is not None:
        data["previous"] = key_data(event.previous)
    return AlertEvent(
        random_event_id(), "key." + event.kind, event.at, event.tenant_id, data
    )
