"""
`Alerts`: the alert service. `emit` hands an event to a thread that queues
it in the outbox (once per event id) and writes its audit entry; a
`WebhookSender` delivers it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zerfoo_cloud._closing import ClosedOnExit
from zerfoo_cloud.alerts.budget_alerts import BudgetEventLike, budget_alert
from zerfoo_cloud.alerts.key_alerts import key_alert
from zerfoo_cloud.alerts.post import post
from zerfoo_cloud.alerts.sender import DEFAULT_POLL, Poster, WebhookSender
from zerfoo_cloud.audit_records.actions import AuditAction, AuditResult
from zerfoo_cloud.audit_records.entry import AuditEntry
from zerfoo_cloud.errors import InvalidConfigError, StoreError

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.alert_records import AlertEvent
    from zerfoo_cloud.alerts.endpoints import WebhookEndpoint
    from zerfoo_cloud.alerts.retry import RetryPolicy
    from zerfoo_cloud.alerts.signing import WebhookSecret
    from zerfoo_cloud.alerts.watcher import AlertWatcher
    from zerfoo_cloud.audit import AuditLogger
    from zerfoo_cloud.stores.alerts import AlertOutbox
    from zerfoo_cloud.tenants.key_events import KeyEvent

__all__ = ["DEFAULT_QUEUE_SIZE", "Alerts", "queue_event"]

#: At most this many events wait for the hand-off thread.
DEFAULT_QUEUE_SIZE = 10_000
_STOP = object()

_log = logging.getLogger("zerfoo_cloud.alerts")


def queue_event(
    outbox: AlertOutbox,
    endpoints: Sequence[WebhookEndpoint],
    event: AlertEvent,
    *,
    audit: AuditLogger | None,
    now: float,
) -> bool:
    """
    Queue *event* in *outbox* for each of *endpoints* that wants its type,
    with one audit entry (action ``alert``, resource ``alert:TYPE:ID``) in
    *audit* if its id is new; return whether it was. Blocks on the disk:
    call it from a thread, never an event loop.

    Raises:
        StoreError: the outbox cannot take it (full, or failing).
    """
    urls = [e.url for e in endpoints if e.wants(event.type)]
    new = outbox.add(event, urls, now)
    if new and audit is not None:
        audit.log(
            AuditEntry(
                None,
                event.tenant_id,
                AuditAction.ALERT,
                AuditResult.SUCCESS,
                resource=f"alert:{event.type}:{event.id}",
            )
        )
    return new


class Alerts(ClosedOnExit):
    """
    Delivers alert events to *endpoints* as signed webhooks, from the
    durable *outbox*, with an audit entry per event.

    **Emitting.** `emit` never blocks and never touches a disk or the
    network: it puts the event on a bounded queue (*queue_size*) and
    returns, so it is safe on the event loop. A thread takes events from
    the queue, queues each in the outbox for every endpoint that wants its
    type (`AlertOutbox.add`, one fsynced transaction; an id the outbox has
    seen is skipped) and, for a new id, logs one audit entry (action
    ``alert``, resource ``alert:TYPE:ID``) to *audit*: once per event id on
    the host that shares the outbox. Then the sender delivers it.

    **Full.** When the queue is full, `emit` returns ``False``: the event
    is dropped, counted (`dropped`, `AlertWatcher.dropped`) and a warning
    is logged (once until the queue has room again). The queue fills only
    when the outbox's disk stalls; events that are found again (key
    expiry scans, budget crossings seen again) come back with the same id.
    An event the outbox refuses as full (`zerfoo_cloud.errors.StoreFullError`)
    is dropped and counted the same way.

    `start` starts both threads; `close` stops them (events on the queue
    are queued in the outbox first, within *timeout*); what waits in a
    durable outbox is sent by the next process.

    Raises:
        InvalidConfigError: endpoints without a secret, or *queue_size*
            below 1.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        outbox: AlertOutbox,
        endpoints: Sequence[WebhookEndpoint],
        secrets: Sequence[WebhookSecret],
        *,
        audit: AuditLogger | None = None,
        policy: RetryPolicy | None = None,
        clock: Clock = time.time,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        poster: Poster = post,
        poll: float = DEFAULT_POLL,
        watchers: Sequence[AlertWatcher] = (),
    ) -> None:
        if endpoints and not secrets:
            msg = "webhook endpoints need a signing secret (ZERFOO_CLOUD_WEBHOOK_SECRET or a secret file)"
            raise InvalidConfigError(msg, field="webhook_secret")
        if queue_size < 1:
            msg = f"queue_size must be at least 1, not {queue_size}"
            raise InvalidConfigError(msg, field="queue_size")
        self.outbox = outbox
        self.endpoints = tuple(endpoints)
        self.audit = audit
        self.clock = clock
        self.sender = WebhookSender(
            outbox,
            secrets,
            policy=policy,
            clock=clock,
            poster=poster,
            poll=poll,
            watchers=watchers,
        )
        # One list: a watcher added later hears the sender too.
        self.watchers = self.sender.watchers
        self._queue: queue.Queue[object] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._full = False
        self.dropped = 0
        self._closed = False

    def watch(self, watcher: AlertWatcher) -> None:
        """
        Tell *watcher* of every outcome from now on, starting with the
        outbox's counts now.
        """
        self.watchers.append(watcher)
        watcher.counts_changed(self.outbox.counts())

    # -- emitting ---------------------------------------------------------

    def emit(self, event: AlertEvent) -> bool:
        """
        Hand *event* to the alert thread; return ``False`` when the queue
        is full and it was dropped (see the class docstring). Never blocks.
        """
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._dropped(event, "the alert queue is full")
            return False
        self._full = False
        return True

    def key_event(self, event: KeyEvent) -> None:
        """
        The *key_events* sink of a `zerfoo_cloud.TenantManager`: emits the
        key's alert (`zerfoo_cloud.alerts.key_alert`).
        """
        self.emit(key_alert(event))

    def budget_event(self, event: BudgetEventLike) -> None:
        """
        The *budget_events* callback of the policy: emits the crossing's
        alert (`zerfoo_cloud.alerts.budget_alert`). Never blocks.
        """
        self.emit(budget_alert(event, self.clock()))

    def _dropped(self, event: AlertEvent, why: str) -> None:
        self.dropped += 1
        for watcher in self.watchers:
            watcher.dropped()
        if not self._full:
            self._full = True
            _log.warning(
                "%s: alert %s (%s) was dropped; drops are counted in "
                "alerts_dropped_total",
                why,
                event.id,
                event.type,
            )

    def record(self, event: AlertEvent) -> bool:
        """
        Queue *event* in the outbox now, in this thread (not on an event
        loop), with its audit entry if it is new; return whether it was new.

        Raises:
            StoreError: the outbox cannot take it (full, or failing).
        """
        new = queue_event(
            self.outbox, self.endpoints, event, audit=self.audit, now=self.clock()
        )
        if new:
            self.sender.wake()
        return new

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                event: AlertEvent = item  # type: ignore[assignment]
                try:
                    self.record(event)
                except StoreError as exc:
                    self._dropped(event, f"the alert outbox refused it ({exc})")
                except Exception:  # noqa: BLE001 - the thread must live on; logged
                    _log.exception("alert %s could not be queued", event.id)
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """
        Return once every event emitted before was queued in the outbox
        (or dropped). Call it from a thread, not an event loop.
        """
        if self._thread is not None:
            self._queue.join()

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        """
        Start the hand-off thread and the sender (once).
        """
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._run, name="zerfoo-cloud alerts", daemon=True
            )
            self._thread.start()
            self.sender.start()

    def close(self, timeout: float | None = 10.0) -> None:
        """
        Queue what was emitted, stop both threads (the sender after the
        attempt under way), each waiting up to *timeout* seconds. The
        outbox stays open (whoever opened it closes it).
        """
        if self._closed:
            return
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                _log.warning(
                    "the alert queue did not drain in time; its events are lost"
                )
            else:
                thread.join(timeout)
        self.sender.stop(timeout)
