"""
The alert outbox contract, run against every backend: idempotent adds,
due order, attempts kept, retries, dead letters and their retry.
"""

from __future__ import annotations

import pytest

from zerfoo_cloud.alerts import AlertEvent, Attempt, deterministic_event_id
from zerfoo_cloud.stores.alerts import AlertOutbox

A, B = "http://127.0.0.1:9/a", "http://127.0.0.1:9/b"


def _event(n: int = 1) -> AlertEvent:
    return AlertEvent(
        deterministic_event_id("test", n), "test", 100.0 + n, "acme", {"n": n}
    )


def test_an_event_id_is_queued_once(outbox: AlertOutbox) -> None:
    """Adding an id twice queues it once, and a delivered id never again."""
    assert outbox.add(_event(), [A, B], 10.0)
    assert not outbox.add(_event(), [A, B], 11.0)
    assert [d.url for d in outbox.pending()] == [A, B]
    for delivery in outbox.pending():
        outbox.attempted(delivery, Attempt(12.0, "200"), "delivered", 12.0)
    assert not outbox.add(_event(), [A], 13.0)
    assert outbox.counts() == (0, 0, 2)


def test_an_event_with_no_endpoint_is_remembered(outbox: AlertOutbox) -> None:
    """With no URL the id is still seen (and nothing is pending)."""
    assert outbox.add(_event(), [], 10.0)
    assert not outbox.add(_event(), [A], 10.0)
    assert outbox.pending() == []


def test_due_returns_what_is_due_oldest_first_up_to_the_limit(
    outbox: AlertOutbox,
) -> None:
    """Only deliveries due at now come back, in queue order, at most *limit*."""
    for n in range(3):
        outbox.add(_event(n), [A], 10.0 + n)
    assert [d.event.id for d in outbox.due(11.0, 10)] == [_event(0).id, _event(1).id]
    assert len(outbox.due(12.0, 2)) == 2
    assert outbox.next_due() == 10.0


def test_attempts_are_kept_and_a_retry_waits(outbox: AlertOutbox) -> None:
    """A failed attempt is kept with its result; the delivery waits until next_at."""
    outbox.add(_event(), [A], 10.0)
    (delivery,) = outbox.due(10.0, 10)
    outbox.attempted(delivery, Attempt(10.0, "500"), "retry", 20.0)
    assert outbox.due(19.9, 10) == []
    (again,) = outbox.due(20.0, 10)
    assert again.attempts == (Attempt(10.0, "500"),)
    outbox.attempted(again, Attempt(20.0, "timeout"), "retry", 40.0)
    assert outbox.pending()[0].attempts == (
        Attempt(10.0, "500"),
        Attempt(20.0, "timeout"),
    )
    assert outbox.next_due() == 40.0


def test_a_dead_letter_is_kept_counted_listed_and_retried(outbox: AlertOutbox) -> None:
    """A delivery that gave up is a dead letter until retried, attempts kept."""
    outbox.add(_event(1), [A], 10.0)
    outbox.add(_event(2), [A], 10.0)
    for delivery in outbox.due(10.0, 10):
        outbox.attempted(delivery, Attempt(10.0, "503"), "dead", 10.0)
    assert outbox.counts() == (0, 2, 0)
    assert outbox.pending() == []
    assert outbox.next_due() is None
    assert [d.dead for d in outbox.dead_letters()] == [True, True]
    assert outbox.retry(_event(1).id, 50.0) == 1
    (back,) = outbox.due(50.0, 10)
    assert back.event.id == _event(1).id
    assert not back.dead
    assert back.attempts == (Attempt(10.0, "503"),)
    assert outbox.retry(None, 60.0) == 1
    assert outbox.retry(None, 60.0) == 0
    assert outbox.counts() == (2, 0, 0)


def test_an_attempt_on_a_delivery_no_longer_pending_changes_nothing(
    outbox: AlertOutbox,
) -> None:
    """Recording an attempt twice (another process did) leaves the outbox alone."""
    outbox.add(_event(), [A], 10.0)
    (delivery,) = outbox.due(10.0, 10)
    outbox.attempted(delivery, Attempt(10.0, "200"), "delivered", 10.0)
    outbox.attempted(delivery, Attempt(10.0, "500"), "dead", 10.0)
    assert outbox.counts() == (0, 0, 1)


@pytest.mark.parametrize("held", [True])
def test_sending_is_granted_to_a_lone_process(outbox: AlertOutbox, held: bool) -> None:
    """With no other process, this one may send."""
    with outbox.sending() as mine:
        assert mine is held
