"""
What an alert outbox keeps of one event's delivery to one endpoint: the
event, the endpoint, every attempt (`Attempt`) and when to try next
(`Delivery`); and how many deliveries wait, died or went (`OutboxCounts`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import attrs

from zerfoo_cloud.alert_records.event import AlertEvent

__all__ = ["Attempt", "Delivery", "OutboxCounts", "oldest_first"]


@attrs.frozen
class Attempt:
    """
    One try to deliver: when it started (Unix seconds) and what came of it
    (``"200"`` and other status codes, ``"timeout"``, or a short error
    name such as ``"ConnectionRefusedError"``).

    .. versionadded:: 0.1.0
    """

    at: float
    result: str

    def to_dict(self) -> dict[str, Any]:
        """
        The attempt as JSON-ready data.
        """
        return {"at": self.at, "result": self.result}


@attrs.frozen
class Delivery:
    """
    The delivery of *event* to the endpoint *url*: the attempts made
    (oldest first), when it may be tried next (*next_at*, Unix seconds),
    when it was queued (*queued_at*) and whether it is a dead letter (it
    gave up: kept, listed and retried only on request).

    .. versionadded:: 0.1.0
    """

    event: AlertEvent
    url: str
    queued_at: float
    next_at: float
    attempts: tuple[Attempt, ...] = ()
    dead: bool = False

    @property
    def key(self) -> str:
        """
        What names the delivery in its outbox: the event id and the URL.
        """
        return self.event.id + " " + self.url

    def to_dict(self) -> dict[str, Any]:
        """
        The delivery as JSON-ready data (what an outbox stores, and what
        ``zerfoo-cloud alerts list --json`` prints).
        """
        return {
            "event": self.event.stored(),
            "url": self.url,
            "queued_at": self.queued_at,
            "next_at": self.next_at,
            "attempts": [a.to_dict() for a in self.attempts],
            "dead": self.dead,
        }

    @classmethod
    def from_dict(cls, data: object) -> Delivery:
        """
        Rebuild a delivery from `to_dict`'s form.

        Raises:
            ValueError: *data* is not such a form.
        """
        if not isinstance(data, dict) or set(data) != _FIELDS:
            msg = "not an alert delivery (wrong fields)"
            raise ValueError(msg)
        try:
            return cls(
                AlertEvent.from_stored(data["event"]),
                str(data["url"]),
                float(data["queued_at"]),
                float(data["next_at"]),
                tuple(
                    Attempt(float(a["at"]), str(a["result"])) for a in data["attempts"]
                ),
                bool(data["dead"]),
            )
        except (TypeError, KeyError) as exc:
            msg = f"not an alert delivery ({exc})"
            raise ValueError(msg) from exc


_FIELDS = frozenset(("event", "url", "queued_at", "next_at", "attempts", "dead"))


class OutboxCounts(NamedTuple):
    """
    How an alert outbox stands.
    """

    #: Deliveries waiting to be sent or retried.
    pending: int
    #: Deliveries that gave up (dead letters), kept until retried.
    dead: int
    #: Deliveries that went (a 2xx answer), since the outbox was made.
    delivered: int


def oldest_first(deliveries: Iterable[Delivery]) -> list[Delivery]:
    """
    *deliveries* in the order they were queued (then by event time and key).
    """
    return sorted(deliveries, key=lambda d: (d.queued_at, d.event.created_at, d.key))
