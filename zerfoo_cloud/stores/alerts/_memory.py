"""
`MemoryAlertOutbox`: alert deliveries kept in this process's memory.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud._closing import ClosedOnExit
from zerfoo_cloud.alert_records import Delivery, OutboxCounts, oldest_first

if TYPE_CHECKING:
    from zerfoo_cloud.alert_records import AlertEvent, Attempt

__all__ = ["MemoryAlertOutbox"]


class MemoryAlertOutbox(ClosedOnExit):
    """
    An `zerfoo_cloud.stores.alerts.AlertOutbox` in memory: for tests and
    development (what waits is lost when the process ends). Safe for
    threads.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, Delivery] = {}
        self._dead: dict[str, Delivery] = {}
        self._seen: set[str] = set()
        self._delivered = 0
        self._endpoints: list[tuple[str, tuple[str, ...]]] = []

    def add(self, event: AlertEvent, urls: Sequence[str], now: float) -> bool:
        """
        See `AlertOutbox.add`.
        """
        with self._lock:
            if event.id in self._seen:
                return False
            self._seen.add(event.id)
            for url in dict.fromkeys(urls):
                delivery = Delivery(event, url, now, now)
                self._pending[delivery.key] = delivery
            return True

    def due(self, now: float, limit: int) -> list[Delivery]:
        """
        See `AlertOutbox.due`.
        """
        with self._lock:
            ready = [d for d in self._pending.values() if d.next_at <= now]
        return oldest_first(ready)[:limit]

    def next_due(self) -> float | None:
        """
        See `AlertOutbox.next_due`.
        """
        with self._lock:
            return min((d.next_at for d in self._pending.values()), default=None)

    def attempted(
        self, delivery: Delivery, attempt: Attempt, outcome: str, next_at: float
    ) -> None:
        """
        See `AlertOutbox.attempted`.
        """
        with self._lock:
            current = self._pending.pop(delivery.key, None)
            if current is None:
                return
            if outcome == "delivered":
                self._delivered += 1
                return
            done = attrs.evolve(
                current,
                attempts=(*current.attempts, attempt),
                next_at=next_at,
                dead=outcome == "dead",
            )
            (self._dead if done.dead else self._pending)[done.key] = done

    def pending(self) -> list[Delivery]:
        """
        See `AlertOutbox.pending`.
        """
        with self._lock:
            return oldest_first(self._pending.values())

    def dead_letters(self) -> list[Delivery]:
        """
        See `AlertOutbox.dead_letters`.
        """
        with self._lock:
            return oldest_first(self._dead.values())

    def retry(self, event_id: str | None, now: float) -> int:
        """
        See `AlertOutbox.retry`.
        """
        with self._lock:
            chosen = [d for d in self._dead.values() if event_id in {None, d.event.id}]
            for delivery in chosen:
                del self._dead[delivery.key]
                self._pending[delivery.key] = attrs.evolve(
                    delivery, dead=False, next_at=now
                )
            return len(chosen)

    def counts(self) -> OutboxCounts:
        """
        See `AlertOutbox.counts`.
        """
        with self._lock:
            return OutboxCounts(len(self._pending), len(self._dead), self._delivered)

    def set_endpoints(self, endpoints: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        """
        See `AlertOutbox.set_endpoints`.
        """
        self._endpoints = [(url, tuple(p)) for url, p in endpoints]

    def endpoints(self) -> list[tuple[str, tuple[str, ...]]]:
        """
        See `AlertOutbox.endpoints`.
        """
        return list(self._endpoints)

    @contextlib.contextmanager
    def _sending(self) -> Iterator[bool]:
        yield True

    def sending(self) -> contextlib.AbstractContextManager[bool]:
        """
        See `AlertOutbox.sending`: one process, so always ``True``.
        """
        return self._sending()

    def close(self) -> None:
        """
        Nothing to release.
        """
