"""
The key expiry scan: `expiring_key_alerts` finds keys about to expire, and
`ExpiryScan` runs it every few minutes in a thread of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from zerfoo_cloud.alert_records import AlertEvent, deterministic_event_id
from zerfoo_cloud.alerts.key_alerts import key_data
from zerfoo_cloud.errors import InvalidConfigError

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.tenant_records import TenantRecord

__all__ = [
    "DEFAULT_EXPIRY_WINDOW",
    "DEFAULT_SCAN_INTERVAL",
    "ExpiryScan",
    "expiring_key_alerts",
]

#: Keys that expire within this many seconds are announced (7 days).
DEFAULT_EXPIRY_WINDOW = 7 * 86400.0
#: ``serve`` scans every this many seconds (10 minutes).
DEFAULT_SCAN_INTERVAL = 600.0

_log = logging.getLogger("zerfoo_cloud.alerts")


def expiring_key_alerts(
    records: Iterable[TenantRecord], now: float, window: float = DEFAULT_EXPIRY_WINDOW
) -> list[AlertEvent]:
    """
    One ``key.expiring`` alert per key of *records* that works at *now*
    and expires within *window* seconds after it.

    Each alert's id is made of the tenant, the key id and the expiry, so
    every scan finds the same id for the same key and expiry: the outbox
    queues it once. A key given a new expiry is announced again.
    """
    found = []
    for record in records:
        for key in record.keys:
            expires = key.expires_at
            if expires is None or key.revoked_at is not None:
                continue
            if now < expires <= now + window:
                data = key_data(key)
                data["seconds_left"] = int(expires - now)
                event_id = deterministic_event_id(
                    "key.expiring", record.id, key.id, repr(float(expires))
                )
                found.append(AlertEvent(event_id, "key.expiring", now, record.id, data))
    return found


class ExpiryScan:
    """
    Runs `expiring_key_alerts` over ``records()`` every *interval* seconds
    (first at `start`) in a daemon thread, and hands each alert to *emit*
    (`Alerts.emit`). A scan that fails is logged and tried at the next
    interval.

    Raises:
        InvalidConfigError: *interval* or *window* is not positive.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        records: Callable[[], Iterable[TenantRecord]],
        emit: Callable[[AlertEvent], object],
        *,
        window: float = DEFAULT_EXPIRY_WINDOW,
        interval: float = DEFAULT_SCAN_INTERVAL,
        clock: Clock = time.time,
    ) -> None:
        for name, value in (("window", window), ("interval", interval)):
            if not value > 0:
                msg = f"the key expiry {name} must be positive, not {value!r}"
                raise InvalidConfigError(msg, field=f"expiry_{name}")
        self.records = records
        self.emit = emit
        self.window = window
        self.interval = interval
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan(self) -> int:
        """
        Scan once, now, in this thread; return how many alerts were emitted.
        """
        found = expiring_key_alerts(self.records(), self.clock(), self.window)
        for event in found:
            self.emit(event)
        return len(found)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - tried again at the next interval
                _log.exception("the key expiry scan failed; it runs again later")
            self._stop.wait(self.interval)

    def start(self) -> None:
        """
        Start scanning (once).
        """
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="zerfoo-cloud key expiry scan", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float | None = 10.0) -> None:
        """
        Stop scanning (after the scan under way, waiting up to *timeout*).
        """
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
