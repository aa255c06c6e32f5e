"""
What alerts cost where it matters: on the event loop, the hand-off of a
budget event (`Alerts.budget_event`: the alert made, its id hashed, the
event put on the queue); off it, signing a delivery and queueing an event
in the LMDB alert outbox (one fsynced transaction each).

The baseline, measured in the same run, is a bare hand-off: one
`queue.Queue.put_nowait` and `get_nowait` of a ready object.
"""

from __future__ import annotations

import queue
import tempfile
import time
from pathlib import Path

import attrs

from benchmarks._timing import rate, row
from zerfoo_cloud.alerts import (
    AlertEvent,
    Alerts,
    WebhookEndpoint,
    WebhookSecret,
    random_event_id,
    sign,
)
from zerfoo_cloud.budgets import BudgetEvent
from zerfoo_cloud.stores.alerts import LMDBAlertOutbox, MemoryAlertOutbox


def main() -> None:
    """Print calls per second of the hand-off, a signature and an outbox write."""
    bare: queue.Queue[object] = queue.Queue(10_000)
    item = object()

    def handoff() -> None:
        bare.put_nowait(item)
        bare.get_nowait()

    baseline = rate(handoff)
    print(row("baseline: Queue.put_nowait + get_nowait", baseline))
    secret = WebhookSecret.generate()
    alerts = Alerts(
        MemoryAlertOutbox(), [WebhookEndpoint("http://127.0.0.1:9/x")], [secret]
    )
    pending = alerts._queue  # noqa: SLF001 - drained here, as the thread would
    event = BudgetEvent(
        "acme",
        None,
        "month",
        1_798_761_600.0,
        80,
        8_000_000,
        10_000_000,
        "USD",
        False,
        0,
    )

    def budget_event() -> None:
        alerts.budget_event(event)
        pending.get_nowait()

    print(row("Alerts.budget_event (on the event loop)", rate(budget_event), baseline))
    alert = AlertEvent(random_event_id(), "test", time.time(), "acme", {"n": 1})
    body = alert.body()
    print(
        row(
            "sign (one secret, off the loop)",
            rate(lambda: sign([secret], alert.id, 1_800_000_000, body)),
            baseline,
        )
    )
    with tempfile.TemporaryDirectory() as folder:
        outbox = LMDBAlertOutbox.open(Path(folder) / "alerts")
        try:

            def add() -> None:
                outbox.add(
                    attrs.evolve(alert, id=random_event_id()),
                    ["http://127.0.0.1:9/x"],
                    1.0,
                )

            print(
                row(
                    "LMDBAlertOutbox.add (fsynced, off the loop)",
                    rate(add, seconds=1.0, batch=10),
                    baseline,
                )
            )
        finally:
            outbox.close()


if __name__ == "__main__":
    main()
