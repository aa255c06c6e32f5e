"""
`AlertMetrics`: each outcome of a real delivery shows in its series.
"""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry

from tests.alerts._receiver import receiving
from tests.conftest import FakeClock
from zerfoo_cloud.alerts import (
    AlertEvent,
    Alerts,
    RetryPolicy,
    WebhookEndpoint,
    WebhookSecret,
    random_event_id,
)
from zerfoo_cloud.metrics import AlertMetrics
from zerfoo_cloud.stores.alerts import MemoryAlertOutbox


def _value(registry: CollectorRegistry, name: str) -> float:
    found = registry.get_sample_value("zerfoo_cloud_" + name)
    assert found is not None, name
    return found


def test_each_outcome_is_counted(clock: FakeClock, secret: WebhookSecret) -> None:
    """A failure, a delivery, a dead letter and a drop each move their series."""
    registry = CollectorRegistry()
    outbox = MemoryAlertOutbox()
    with receiving(fail_first=1) as good, receiving(fail_first=100) as bad:
        alerts = Alerts(
            outbox,
            [WebhookEndpoint(good.url), WebhookEndpoint(bad.url)],
            [secret],
            policy=RetryPolicy(first_delay=1.0, max_attempts=2),
            clock=clock,
            queue_size=1,
        )
        alerts.sender.rng = random.Random(3)
        alerts.watch(AlertMetrics(registry))
        alerts.record(AlertEvent(random_event_id(), "test", clock(), "", {}))
        assert _value(registry, "alerts_pending") == 0.0
        alerts.sender.send_due()
        assert _value(registry, "alerts_failed_attempts_total") == 2.0
        assert _value(registry, "alerts_pending") == 2.0
        clock.advance(5.0)
        alerts.sender.send_due()
        assert _value(registry, "alerts_delivered_total") == 1.0
        assert _value(registry, "alerts_dead_lettered_total") == 1.0
        assert _value(registry, "alerts_dead_letters") == 1.0
        assert _value(registry, "alerts_pending") == 0.0
    assert alerts.emit(AlertEvent(random_event_id(), "test", clock(), "", {}))
    assert not alerts.emit(AlertEvent(random_event_id(), "test", clock(), "", {}))
    assert _value(registry, "alerts_dropped_total") == 1.0
