"""
Alerts: events delivered as signed webhooks from a durable outbox, with an
audit entry per event.

::

    outbox = LMDBAlertOutbox.open(alerts_folder(db_url))
    alerts = Alerts(
        outbox,
        [WebhookEndpoint("https://ops.example.com/hooks", ("budget.*",))],
        parse_secrets(os.environ["ZERFOO_CLOUD_WEBHOOK_SECRET"]),
        audit=audit_logger,
    )
    alerts.start()
    tenants = TenantManager(store, key_events=alerts.key_event)
    alerts.emit(event)          # never blocks; see `Alerts`

The parts, one per module: `AlertEvent` and its ids
(`zerfoo_cloud.alert_records`), Standard Webhooks signatures
(`signing`: `sign`, `verify`, `WebhookSecret`), endpoints and their event
filters (`endpoints`), the retry policy (`retry`), the HTTP POST (`post`),
the sending thread (`sender`), the service (`service`: `Alerts`), and the
event sources: keys (`key_alerts`), the key expiry scan (`expiry`) and
spend budgets (`budget_alerts`). The outboxes are in
`zerfoo_cloud.stores.alerts`. See ``docs/alerts.md``.
"""

from __future__ import annotations

from zerfoo_cloud.alert_records import (
    EVENT_TYPES,
    AlertEvent,
    Attempt,
    Delivery,
    OutboxCounts,
    deterministic_event_id,
    random_event_id,
)
from zerfoo_cloud.alerts.budget_alerts import BudgetEventLike, budget_alert
from zerfoo_cloud.alerts.endpoints import (
    WebhookEndpoint,
    display_url,
    parse_event_filter,
)
from zerfoo_cloud.alerts.expiry import (
    DEFAULT_EXPIRY_WINDOW,
    DEFAULT_SCAN_INTERVAL,
    ExpiryScan,
    expiring_key_alerts,
)
from zerfoo_cloud.alerts.folder import ALERTS_OUTBOX_ENV, alerts_folder
from zerfoo_cloud.alerts.key_alerts import key_alert
from zerfoo_cloud.alerts.post import post
from zerfoo_cloud.alerts.retry import RetryPolicy
from zerfoo_cloud.alerts.secret_source import WEBHOOK_SECRET_ENV, load_secrets
from zerfoo_cloud.alerts.sender import WebhookSender
from zerfoo_cloud.alerts.service import DEFAULT_QUEUE_SIZE, Alerts, queue_event
from zerfoo_cloud.alerts.signing import (
    DEFAULT_TOLERANCE,
    WebhookSecret,
    parse_secrets,
    sign,
    verify,
)
from zerfoo_cloud.alerts.watcher import AlertWatcher
from zerfoo_cloud.errors import WebhookVerificationError

__all__ = [
    "ALERTS_OUTBOX_ENV",
    "DEFAULT_EXPIRY_WINDOW",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_SCAN_INTERVAL",
    "DEFAULT_TOLERANCE",
    "EVENT_TYPES",
    "WEBHOOK_SECRET_ENV",
    "AlertEvent",
    "AlertWatcher",
    "Alerts",
    "Attempt",
    "BudgetEventLike",
    "Delivery",
    "ExpiryScan",
    "OutboxCounts",
    "RetryPolicy",
    "WebhookEndpoint",
    "WebhookSecret",
    "WebhookSender",
    "WebhookVerificationError",
    "alerts_folder",
    "budget_alert",
    "deterministic_event_id",
    "display_url",
    "expiring_key_alerts",
    "key_alert",
    "load_secrets",
    "parse_event_filter",
    "parse_secrets",
    "post",
    "queue_event",
    "random_event_id",
    "sign",
    "verify",
]
