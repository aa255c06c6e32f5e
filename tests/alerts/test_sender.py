"""
The sender against a real receiver on 127.0.0.1: signed deliveries,
retries with backoff, dead letters, timeouts and the same id on every try.
"""

from __future__ import annotations

import logging
import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from tests.alerts._receiver import Receiver, receiving
from tests.conftest import FakeClock
from zerfoo_cloud.alerts import (
    AlertEvent,
    RetryPolicy,
    WebhookSecret,
    WebhookSender,
    random_event_id,
    verify,
)
from zerfoo_cloud.stores.alerts import AlertOutbox, MemoryAlertOutbox

FAST = RetryPolicy(
    first_delay=1.0, max_delay=4.0, max_attempts=5, max_age=1000.0, timeout=2.0
)


def _sender(
    outbox: AlertOutbox,
    secret: WebhookSecret,
    clock: FakeClock,
    policy: RetryPolicy = FAST,
) -> WebhookSender:
    return WebhookSender(
        outbox, [secret], policy=policy, clock=clock, rng=random.Random(7)
    )


def _event(clock: FakeClock) -> AlertEvent:
    return AlertEvent(
        random_event_id(), "key.created", clock(), "acme", {"key_id": "k-1"}
    )


def test_a_delivery_is_signed_and_verified_by_the_receiver(
    outbox: AlertOutbox, secret: WebhookSecret, receiver: Receiver, clock: FakeClock
) -> None:
    """The receiver gets the body with headers that both verifiers accept."""
    import time

    clock.now = time.time()
    event = _event(clock)
    outbox.add(event, [receiver.url], clock())
    assert _sender(outbox, secret, clock).send_due() == 1
    (got,) = receiver.received
    assert got.headers["content-type"] == "application/json"
    assert verify(got.body, got.headers, secret) == event.id
    assert Webhook(secret.reveal()).verify(got.body, got.headers)["id"] == event.id
    assert orjson.loads(got.body) == event.to_dict()
    assert outbox.counts() == (0, 0, 1)


def test_a_failing_receiver_is_retried_with_backoff_then_delivered(
    outbox: AlertOutbox, secret: WebhookSecret, clock: FakeClock
) -> None:
    """Two 500s, then 200: three attempts with growing waits, one event id."""
    with receiving(fail_first=2) as receiver:
        event = _event(clock)
        outbox.add(event, [receiver.url], clock())
        sender = _sender(outbox, secret, clock)
        assert sender.send_due() == 0
        (pending,) = outbox.pending()
        first_wait = pending.next_at - clock()
        assert 0.5 <= first_wait <= 1.0
        assert sender.send_due() == 0  # not due yet: nothing sent
        assert len(receiver.received) == 1
        clock.advance(first_wait)
        assert sender.send_due() == 0
        (pending,) = outbox.pending()
        second_wait = pending.next_at - clock()
        assert 1.0 <= second_wait <= 2.0
        assert [a.result for a in pending.attempts] == ["500", "500"]
        clock.advance(second_wait)
        assert sender.send_due() == 1
        assert receiver.ids() == [event.id] * 3
        assert receiver.answered == [500, 500, 200]
        assert outbox.counts() == (0, 0, 1)


def test_backoff_doubles_up_to_its_cap() -> None:
    """The wait doubles per attempt, with jitter from half to all of it, and stops at the cap."""
    policy = RetryPolicy(first_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    for attempts, base in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (400, 8)]:
        waits = [policy.delay(attempts, rng) for _ in range(50)]
        assert all(base / 2 <= w <= base for w in waits)


def test_a_delivery_gives_up_after_max_attempts(
    outbox: AlertOutbox,
    secret: WebhookSecret,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At the last attempt allowed, a failing delivery becomes a dead letter, logged without secrets."""
    with receiving(fail_first=100) as receiver:
        outbox.add(_event(clock), [receiver.url], clock())
        sender = _sender(
            outbox, secret, clock, RetryPolicy(first_delay=1.0, max_attempts=3)
        )
        with caplog.at_level(logging.DEBUG, logger="zerfoo_cloud"):
            for _ in range(3):
                sender.send_due()
                clock.advance(10.0)
        assert len(receiver.received) == 3
        assert outbox.counts() == (0, 1, 0)
        (dead,) = outbox.dead_letters()
        assert [a.result for a in dead.attempts] == ["500"] * 3
    assert "gave up after 3 attempts" in caplog.text
    assert secret.reveal()[6:] not in caplog.text
    assert "/hooks/abc" not in caplog.text  # the URL's path may hold a token


def test_a_delivery_gives_up_once_too_old(
    outbox: AlertOutbox, secret: WebhookSecret, clock: FakeClock
) -> None:
    """Past max_age, the next failure makes a dead letter whatever the attempt count."""
    with receiving(fail_first=100) as receiver:
        outbox.add(_event(clock), [receiver.url], clock())
        sender = _sender(
            outbox, secret, clock, RetryPolicy(max_age=60.0, max_attempts=100)
        )
        sender.send_due()
        assert outbox.counts().pending == 1
        clock.advance(60.0)
        sender.send_due()
        assert outbox.counts() == (0, 1, 0)


def test_a_receiver_that_never_answers_times_out_and_is_retried(
    secret: WebhookSecret, clock: FakeClock
) -> None:
    """A hanging receiver costs one timeout; the attempt is kept as "timeout"."""
    outbox = MemoryAlertOutbox()
    with receiving() as receiver:
        receiver.hang.set()
        outbox.add(_event(clock), [receiver.url], clock())
        policy = RetryPolicy(first_delay=1.0, timeout=0.2)
        assert _sender(outbox, secret, clock, policy).send_due() == 0
        (pending,) = outbox.pending()
        assert [a.result for a in pending.attempts] == ["timeout"]
        receiver.hang.clear()
        receiver.release.set()
        clock.advance(1.0)
        assert _sender(outbox, secret, clock, policy).send_due() == 1


def test_no_receiver_at_all_is_a_failed_attempt(
    secret: WebhookSecret, clock: FakeClock
) -> None:
    """A refused connection is recorded by its error name and retried."""
    outbox = MemoryAlertOutbox()
    with receiving() as receiver:
        url = receiver.url
    outbox.add(_event(clock), [url], clock())
    assert _sender(outbox, secret, clock).send_due() == 0
    assert outbox.pending()[0].attempts[0].result == "ConnectionRefusedError"


def test_each_endpoint_is_delivered_on_its_own(
    secret: WebhookSecret, clock: FakeClock
) -> None:
    """One endpoint failing does not hold back another."""
    outbox = MemoryAlertOutbox()
    with receiving() as good, receiving(fail_first=100) as bad:
        event = _event(clock)
        outbox.add(event, [good.url, bad.url], clock())
        assert _sender(outbox, secret, clock).send_due() == 1
        assert good.ids() == [event.id]
        assert bad.ids() == [event.id]
        assert [d.url for d in outbox.pending()] == [bad.url]


def test_the_thread_delivers_what_is_due(
    secret: WebhookSecret, receiver: Receiver
) -> None:
    """Started, the sender thread delivers a queued event without being asked."""
    import time

    outbox = MemoryAlertOutbox()
    sender = WebhookSender(outbox, [secret], poll=0.05)
    sender.start()
    try:
        outbox.add(
            AlertEvent(random_event_id(), "test", time.time(), "", {}),
            [receiver.url],
            time.time(),
        )
        sender.wake()
        deadline = time.monotonic() + 10
        while outbox.counts().delivered < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sender.stop()
    assert outbox.counts() == (0, 0, 1)


@given(
    first=st.floats(0.001, 100.0),
    factor=st.floats(1.0, 1000.0),
    attempts=st.integers(1, 10_000),
    seed=st.integers(0, 2**32),
)
def test_backoff_stays_between_half_and_all_of_the_capped_doubling(
    first: float, factor: float, attempts: int, seed: int
) -> None:
    """Any policy's wait lies in [base/2, base], base = min(cap, first * 2**(n-1)), never above the cap."""
    policy = RetryPolicy(first_delay=first, max_delay=first * factor)
    wait = policy.delay(attempts, random.Random(seed))
    base = min(policy.max_delay, first * 2.0 ** min(attempts - 1, 64))
    assert base / 2 <= wait <= base
    assert wait <= policy.max_delay


@pytest.mark.parametrize(
    ("attempts", "age", "gives_up"),
    [(4, 0, False), (5, 0, True), (1, 999.9, False), (1, 1000.0, True)],
)
def test_giving_up_holds_at_the_limits(
    attempts: int, age: float, gives_up: bool
) -> None:
    """At max_attempts or max_age a delivery gives up; just under, it does not."""
    assert FAST.gives_up(attempts, 0.0, age) is gives_up
