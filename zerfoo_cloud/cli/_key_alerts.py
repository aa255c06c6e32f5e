"""
Key alerts from the ``zerfoo-cloud key`` commands: the keys they create,
revoke or rotate are queued in this host's alert outbox, for the endpoints
the host's server sends to (`zerfoo_cloud.stores.alerts.AlertOutbox.endpoints`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.alerts import WebhookEndpoint, alerts_folder, key_alert, queue_event
from zerfoo_cloud.errors import CloudError
from zerfoo_cloud.stores.alerts import LMDBAlertOutbox

if TYPE_CHECKING:
    from zerfoo_cloud.audit import AuditLogger
    from zerfoo_cloud.tenants.key_events import KeyEvent

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


def queue_key_alerts(db: str, events: Sequence[KeyEvent], audit: AuditLogger) -> int:
    """
    Queue the alerts of *events* in the alert outbox of store *db* on this
    host, if a server made one and named endpoints; return how many were
    queued. A failure is a warning on stderr: the key change is made.
    """
    folder = alerts_folder(db)
    if not events or not (folder / "data.mdb").exists():
        return 0
    queued = 0
    try:
        with LMDBAlertOutbox.open(folder) as outbox:
            endpoints = [WebhookEndpoint(url, p) for url, p in outbox.endpoints()]
            if endpoints:
                for event in events:
                    queued += queue_event(
                        outbox,
                        endpoints,
                        key_alert(event),
                        audit=audit,
                        now=time.time(),
                    )
    except CloudError as exc:
        click.echo(f"warning: the key alert was not queued: {exc}", err=True)
    return queued
