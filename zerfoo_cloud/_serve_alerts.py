"""
The alerts of ``zerfoo-cloud serve``: the webhook endpoints of
``--webhook-url``, and `ServedAlerts`, which opens the host's alert outbox,
starts the `zerfoo_cloud.alerts.Alerts` threads and the key expiry scan,
and closes them with the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from zerfoo_cloud.alerts import (
    Alerts,
    ExpiryScan,
    WebhookEndpoint,
    alerts_folder,
    load_secrets,
    parse_event_filter,
)
from zerfoo_cloud.stores.alerts import LMDBAlertOutbox

if TYPE_CHECKING:
    from zerfoo_cloud.audit import AuditLogger
    from zerfoo_cloud.tenant_records import TenantRecord

__all__ = ["ServedAlerts", "webhook_endpoints"]


def webhook_endpoints(
    specs: Iterable[str], events: str = ""
) -> tuple[WebhookEndpoint, ...]:
    """
    The endpoints of ``--webhook-url`` values *specs*: ``URL`` (the types
    of *events*, the ``--webhook-events`` filter; empty: all) or
    ``PATTERNS=URL`` (its own filter, e.g. ``budget.*,key.revoked=https://…``).

    Raises:
        InvalidConfigError: a URL or pattern is malformed.
    """
    shared = parse_event_filter(events)
    found = []
    for spec in specs:
        patterns, sep, url = spec.partition("=")
        if sep and not patterns.startswith(("http://", "https://")):
            found.append(WebhookEndpoint(url, parse_event_filter(patterns)))
        else:
            found.append(WebhookEndpoint(spec, shared))
    return tuple(found)


class ServedAlerts:
    """
    The alerts of one server process: the host's LMDB alert outbox (beside
    the other state, `zerfoo_cloud.alerts.alerts_folder` of *records*), the
    running `Alerts` (secrets from *env* or *secret_file*) and the key
    expiry scan over ``records()`` every *interval* seconds.

    Raises:
        InvalidConfigError: no secret, or a malformed one.
        StoreError: the outbox cannot be opened.
    """

    def __init__(
        self,
        endpoints: Sequence[WebhookEndpoint],
        *,
        records: str,
        env: Mapping[str, str],
        secret_file: str | None,
        audit: AuditLogger,
        tenant_records: Callable[[], Iterable[TenantRecord]],
        window: float,
        interval: float,
    ) -> None:
        secrets = load_secrets(env, secret_file)
        self.outbox = LMDBAlertOutbox.open(alerts_folder(records, env))
        try:
            # Commands changing keys on this host queue for these endpoints.
            self.outbox.set_endpoints([(e.url, e.events) for e in endpoints])
            self.alerts = Alerts(self.outbox, endpoints, secrets, audit=audit)
            self.scan = ExpiryScan(
                tenant_records, self.alerts.emit, window=window, interval=interval
            )
        except BaseException:
            self.outbox.close()
            raise

    def start(self) -> None:
        """
        Start delivering and scanning.
        """
        self.alerts.start()
        self.scan.start()

    def close(self) -> None:
        """
        Stop scanning and delivering (what was emitted is queued first),
        then close the outbox; what waits is sent by the next server.
        """
        self.scan.close()
        self.alerts.close()
        self.outbox.close()
