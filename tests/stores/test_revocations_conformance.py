"""
The `KeyRevocations` contract, run against every implementation.

To add a backend, add a branch to the `open_revocations` fixture and one
`pytest.param` to its params. The fixture opens instances that share one
backend: for one in memory the same instance, for Redis one connection each
(as two hosts would).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests._redis_servers import REDIS_PARAMS, redis_target
from zerfoo_cloud.errors import StoreError
from zerfoo_cloud.stores.memory import MemoryKeyRevocations
from zerfoo_cloud.stores.protocols import KeyRevocations, Subscription
from zerfoo_cloud.stores.redis import RedisKeyRevocations

Opener = Callable[[], KeyRevocations]


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory, id="memory"),
        *REDIS_PARAMS,
    ]
)
def open_revocations(
    request: pytest.FixtureRequest, redis_prefix: str
) -> Iterator[Opener]:
    """
    Opens instances of one implementation sharing one backend; all are
    closed afterwards.
    """
    opened: list[KeyRevocations] = []
    shared = MemoryKeyRevocations()

    def open_one() -> KeyRevocations:
        if request.param == "memory":
            return shared
        url, cluster = redis_target(request)
        revocations = RedisKeyRevocations.from_url(
            url, cluster=cluster, prefix=redis_prefix
        )
        opened.append(revocations)
        return revocations

    yield open_one
    for revocations in opened:
        revocations.close()
    shared.close()


class Heard:
    """What a subscriber was called with, waited on by the tests."""

    def __init__(self) -> None:
        self.calls: list[str | None] = []
        self.changed = threading.Condition()

    def __call__(self, tenant_id: str | None) -> None:
        with self.changed:
            self.calls.append(tenant_id)
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[str]:
        """Wait until *count* tenant ids were heard; return them."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.ids()) >= count, timeout), (
                f"heard {self.calls}, expected {count} ids"
            )
            return self.ids()

    def wait_live(self, timeout: float = 5.0) -> None:
        """Wait for the first call, which must be ``None``."""
        with self.changed:
            assert self.changed.wait_for(lambda: self.calls, timeout), "never live"
            assert self.calls[0] is None

    def ids(self) -> list[str]:
        """The tenant ids heard, without the ``None`` s."""
        with self.changed:
            return [c for c in self.calls if c is not None]

    def nones(self) -> int:
        """How many times it was told that anything may have changed."""
        with self.changed:
            return self.calls.count(None)


def _live(revocations: KeyRevocations) -> tuple[Heard, Subscription]:
    heard = Heard()
    subscription = revocations.subscribe(heard)
    heard.wait_live()
    return heard, subscription


def test_a_subscriber_hears_none_when_live_then_every_publish(
    open_revocations: Opener,
) -> None:
    """Subscribing calls back with None once live; a publish by another host follows."""
    listening, publishing = open_revocations(), open_revocations()
    heard, _ = _live(listening)
    publishing.publish("acme")
    assert heard.wait_for(1) == ["acme"]


def test_every_subscriber_hears_it_the_publisher_included(
    open_revocations: Opener,
) -> None:
    """Two subscribers on two hosts, and one on the publishing host, all hear one publish."""
    one, two = open_revocations(), open_revocations()
    heard = [_live(one)[0], _live(one)[0], _live(two)[0]]
    two.publish("acme")
    for each in heard:
        assert each.wait_for(1) == ["acme"]


def test_messages_of_one_publisher_arrive_in_order(open_revocations: Opener) -> None:
    """A hundred publishes arrive, all of them, in the order sent."""
    listening, publishing = open_revocations(), open_revocations()
    heard, _ = _live(listening)
    sent = [f"t{i}" for i in range(100)]
    for tenant_id in sent:
        publishing.publish(tenant_id)
    assert heard.wait_for(100) == sent


@pytest.mark.parametrize(
    "tenant_id",
    ["a", "a:b@c.d-e_f", "x" * 128, "ünï©ødé", "\x00nul", "lone\udcffsurrogate"],
)
def test_any_id_round_trips(open_revocations: Opener, tenant_id: str) -> None:
    """Ids arrive exactly as published: punctuation, the longest id, NUL, non-ASCII."""
    listening, publishing = open_revocations(), open_revocations()
    heard, _ = _live(listening)
    publishing.publish(tenant_id)
    assert heard.wait_for(1) == [tenant_id]


def test_a_closed_subscription_hears_nothing_more(open_revocations: Opener) -> None:
    """After close, a subscriber is not called; the others still are."""
    listening, publishing = open_revocations(), open_revocations()
    gone, subscription = _live(listening)
    kept, _ = _live(listening)
    subscription.close()
    subscription.close()
    publishing.publish("acme")
    kept.wait_for(1)
    time.sleep(0.1)
    assert gone.ids() == []


def test_a_failing_subscriber_does_not_silence_the_others(
    open_revocations: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that raises is logged; the next subscriber and the next message still arrive."""
    listening, publishing = open_revocations(), open_revocations()
    failures = []

    def failing(tenant_id: str | None) -> None:
        failures.append(tenant_id)
        msg = "subscriber bug"
        raise RuntimeError(msg)

    listening.subscribe(failing)
    heard, _ = _live(listening)
    publishing.publish("one")
    publishing.publish("two")
    assert heard.wait_for(2) == ["one", "two"]
    assert "one" in failures
    assert "two" in failures
    assert "subscriber failed" in caplog.text


def test_closed_revocations_refuse_and_close_twice(open_revocations: Opener) -> None:
    """After close: publish and subscribe raise StoreError, subscribers hear nothing."""
    listening, publishing = open_revocations(), open_revocations()
    heard, _ = _live(listening)
    listening.close()
    listening.close()
    with pytest.raises(StoreError):
        listening.publish("acme")
    with pytest.raises(StoreError):
        listening.subscribe(Heard())
    if publishing is not listening:
        publishing.publish("acme")
        time.sleep(0.2)
    assert heard.ids() == []
