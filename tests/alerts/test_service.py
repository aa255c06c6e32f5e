"""
The alert service: `emit` hands off without blocking, each new event id is
queued once with one audit entry, a full queue drops and counts, and the
sources (keys, the expiry scan, budgets) make the documented events.
"""

from __future__ import annotations

import logging
import threading
import time

import attrs
import pytest

from tests.alerts._receiver import Receiver
from tests.conftest import FakeClock
from zerfoo_cloud import AuditAction, AuditLogger, TenantConfig, TenantManager
from zerfoo_cloud.alerts import (
    AlertEvent,
    Alerts,
    ExpiryScan,
    WebhookEndpoint,
    WebhookSecret,
    budget_alert,
    expiring_key_alerts,
    random_event_id,
)
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.stores.alerts import AlertOutbox, LMDBAlertOutbox, MemoryAlertOutbox
from zerfoo_cloud.stores.memory import MemoryAuditStore


def _event(kind: str = "test", event_id: str | None = None) -> AlertEvent:
    return AlertEvent(event_id or random_event_id(), kind, time.time(), "acme", {})


def test_each_event_id_is_queued_once_with_one_audit_entry(
    outbox: AlertOutbox, secret: WebhookSecret
) -> None:
    """Emitting one id three times queues one delivery and one audit entry."""
    store = MemoryAuditStore()
    alerts = Alerts(
        outbox,
        [WebhookEndpoint("http://127.0.0.1:9/x")],
        [secret],
        audit=AuditLogger(store),
    )
    event = _event(event_id="evt_same")
    assert alerts.record(event)
    assert not alerts.record(event)
    assert not alerts.record(attrs.evolve(event, created_at=event.created_at + 1))
    assert len(outbox.pending()) == 1
    (entry,) = store.all()
    assert entry.action is AuditAction.ALERT
    assert entry.tenant_id == "acme"
    assert entry.resource == "alert:test:evt_same"


def test_endpoints_get_only_the_types_they_filter_for(secret: WebhookSecret) -> None:
    """An endpoint with a filter is queued only events of matching types."""
    outbox = MemoryAlertOutbox()
    budget = WebhookEndpoint("http://127.0.0.1:9/budget", ("budget.*",))
    every = WebhookEndpoint("http://127.0.0.1:9/all")
    alerts = Alerts(outbox, [budget, every], [secret])
    alerts.record(_event("key.revoked"))
    alerts.record(_event("budget.exhausted"))
    assert sorted(
        (d.event.type, d.url.rsplit("/", 1)[1]) for d in outbox.pending()
    ) == [
        ("budget.exhausted", "all"),
        ("budget.exhausted", "budget"),
        ("key.revoked", "all"),
    ]


def test_emit_hands_off_and_the_thread_delivers(
    secret: WebhookSecret, receiver: Receiver
) -> None:
    """Started, an emitted event reaches the receiver with its id."""
    outbox = MemoryAlertOutbox()
    with Alerts(outbox, [WebhookEndpoint(receiver.url)], [secret], poll=0.05) as alerts:
        alerts.start()
        event = _event()
        assert alerts.emit(event)
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.01)
    assert receiver.ids() == [event.id]


def test_a_full_queue_drops_counts_and_logs_once(
    secret: WebhookSecret, caplog: pytest.LogCaptureFixture
) -> None:
    """At the queue's size emit still takes; one more is dropped, counted and logged."""

    class Stalled(MemoryAlertOutbox):
        # An outbox whose disk stalls: the hand-off thread waits in add.
        gate = threading.Event()

        def add(self, event: AlertEvent, urls: object, now: float) -> bool:
            self.gate.wait(10)
            return super().add(event, urls, now)  # type: ignore[arg-type]

    outbox = Stalled()
    alerts = Alerts(
        outbox, [WebhookEndpoint("http://127.0.0.1:9/x")], [secret], queue_size=2
    )
    alerts.start()
    try:
        assert alerts.emit(_event())  # taken by the thread, which stalls
        deadline = time.monotonic() + 5
        while alerts._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert alerts.emit(_event())
        assert alerts.emit(_event())  # the queue holds 2: at its limit
        with caplog.at_level(logging.WARNING, logger="zerfoo_cloud.alerts"):
            assert not alerts.emit(_event())
            assert not alerts.emit(_event())
        assert alerts.dropped == 2
        assert caplog.text.count("the alert queue is full") == 1
    finally:
        Stalled.gate.set()
        alerts.flush()
        alerts.close()
    assert outbox.counts().pending == 3


def test_a_full_outbox_drops_and_counts(
    tmp_path: object, secret: WebhookSecret
) -> None:
    """An LMDB outbox at its size limit refuses the event; it is dropped and counted."""
    from pathlib import Path

    outbox = LMDBAlertOutbox.open(Path(str(tmp_path)) / "full", max_bytes=64 * 1024)
    try:
        alerts = Alerts(outbox, [WebhookEndpoint("http://127.0.0.1:9/x")], [secret])
        alerts.start()
        big = {"x": "a" * 15_000}
        for _ in range(10):
            alerts.emit(AlertEvent(random_event_id(), "test", 1.0, "", big))
        alerts.flush()
        queued = outbox.counts().pending
        assert 0 < queued < 10
        assert alerts.dropped == 10 - queued
        alerts.close()
    finally:
        outbox.close()


def test_endpoints_need_a_secret() -> None:
    """Webhook endpoints without a signing secret are refused at start."""
    with pytest.raises(InvalidConfigError, match="signing secret"):
        Alerts(MemoryAlertOutbox(), [WebhookEndpoint("http://127.0.0.1:9/x")], [])


@pytest.mark.parametrize(
    "url", ["ftp://h/x", "http:///x", "http://h/x y", "", "http://h:99999/"]
)
def test_a_bad_endpoint_url_is_refused(url: str) -> None:
    """Only http(s) URLs with a host are endpoints."""
    with pytest.raises(InvalidConfigError, match="webhook URL"):
        WebhookEndpoint(url)


def test_an_event_filter_that_matches_nothing_is_refused() -> None:
    """A filter pattern that matches no event type is a typo: refused."""
    with pytest.raises(InvalidConfigError, match="matches no event type"):
        WebhookEndpoint("http://h/x", ("budgets.*",))


def test_key_changes_through_the_manager_make_key_alerts(secret: WebhookSecret) -> None:
    """Creating, rotating and revoking keys emit key.created, key.rotated and key.revoked, prefixes only."""
    outbox = MemoryAlertOutbox()
    alerts = Alerts(outbox, [WebhookEndpoint("http://127.0.0.1:9/x")], [secret])
    manager = TenantManager(key_events=alerts.key_event)
    manager.create(TenantConfig("acme", "zc-" + "k" * 40, 10, 1000))
    api_key, made = manager.create_key("acme", name="ci")
    new_key, new, _old = manager.rotate_api_key("acme", made.id)
    manager.revoke_key("acme", new.id)
    manager.revoke_key("acme", new.id)  # revoking twice changes nothing
    alerts.start()
    alerts.flush()
    alerts.close()
    events = [d.event for d in outbox.pending()]
    assert [e.type for e in events] == ["key.created", "key.rotated", "key.revoked"]
    assert events[0].data["key_id"] == made.id
    assert events[1].data["previous"]["key_id"] == made.id
    for event in events:
        text = event.body().decode()
        assert api_key not in text
        assert new_key not in text
        assert made.key_hash not in text


def test_a_key_update_makes_one_key_updated_alert(secret: WebhookSecret) -> None:
    """update_key emits key.updated with the key's limits before and after; an update that changes nothing emits none."""
    outbox = MemoryAlertOutbox()
    alerts = Alerts(outbox, [WebhookEndpoint("http://127.0.0.1:9/x")], [secret])
    manager = TenantManager(key_events=alerts.key_event)
    manager.create(TenantConfig("acme", "zc-" + "k" * 40, 10, 1000))
    api_key, made = manager.create_key("acme", name="ci", rate_limit=5)
    manager.update_key("acme", made.id, rate_limit=7, model_scope=["m1"])
    manager.update_key("acme", made.id, rate_limit=7)  # the same: no event
    alerts.start()
    alerts.flush()
    alerts.close()
    events = [d.event for d in outbox.pending()]
    assert [e.type for e in events] == ["key.created", "key.updated"]
    updated = events[1].data
    assert (updated["key_id"], updated["rate_limit"], updated["model_scope"]) == (
        made.id,
        7,
        ["m1"],
    )
    assert (updated["previous"]["rate_limit"], updated["previous"]["model_scope"]) == (
        5,
        [],
    )
    assert api_key not in events[1].body().decode()
    assert made.key_hash not in events[1].body().decode()


def test_a_failing_key_event_sink_never_fails_the_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink that raises is logged; the key is created anyway."""

    def broken(event: object) -> None:
        raise RuntimeError("boom")

    manager = TenantManager(key_events=broken)
    manager.create(TenantConfig("acme", "zc-" + "k" * 40, 10, 1000))
    with caplog.at_level(logging.WARNING):
        _, made = manager.create_key("acme", name="ci")
    assert manager.list_keys("acme")[-1].id == made.id
    assert "key event sink failed" in caplog.text


def test_the_expiry_scan_finds_keys_within_the_window_with_stable_ids(
    clock: FakeClock,
) -> None:
    """Keys expiring within the window are found; scans repeat the same ids."""
    manager = TenantManager(clock=clock)
    manager.create(TenantConfig("acme", "zc-" + "k" * 40, 10, 1000))
    _, soon = manager.create_key("acme", name="soon", expires_at=clock() + 86400)
    _, edge = manager.create_key("acme", name="edge", expires_at=clock() + 7 * 86400)
    manager.create_key("acme", name="later", expires_at=clock() + 7 * 86400 + 1)
    _, gone = manager.create_key("acme", name="gone", expires_at=clock() + 3600)
    manager.revoke_key("acme", gone.id)
    first = expiring_key_alerts(manager.records(), clock())
    assert [e.data["key_id"] for e in first] == [soon.id, edge.id]
    assert first[0].data["seconds_left"] == 86400
    clock.advance(600)
    again = expiring_key_alerts(manager.records(), clock())
    assert [e.id for e in again[:2]] == [e.id for e in first]
    assert again[2].data["name"] == "later"  # entered the window meanwhile
    outbox = MemoryAlertOutbox()
    alerts = Alerts(outbox, [], [])
    scan = ExpiryScan(manager.records, alerts.record, clock=clock)
    assert scan.scan() == 3
    assert scan.scan() == 3
    assert outbox.counts() == (0, 0, 0)  # no endpoint: nothing pending
    assert sum(alerts.record(e) for e in again) == 0  # seen: not queued again


@attrs.frozen
class _Budget:
    tenant_id: str = "acme"
    key_id: str | None = None
    period: str = "month"
    period_start: float | None = 1_798_761_600.0
    threshold: int = 80
    spent: int = 8_000_000
    amount: int = 10_000_000
    currency: str = "USD"
    exhausted: bool = False
    overrun: int = 0


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (_Budget(), "budget.threshold"),
        (_Budget(threshold=100, spent=10_000_000, exhausted=True), "budget.exhausted"),
        (
            _Budget(threshold=100, spent=10_000_001, exhausted=True, overrun=1),
            "budget.overrun",
        ),
    ],
)
def test_budget_events_become_budget_alerts(event: _Budget, kind: str) -> None:
    """A budget event becomes its alert type, with money in micro-units and a stable id."""
    alert = budget_alert(event, 5.0)
    assert alert.type == kind
    assert alert.data["spent"] == event.spent
    assert alert.data["overrun"] == event.overrun
    assert alert.data["period_start"] == "2027-01-01T00:00:00+00:00"
    assert budget_alert(event, 9.0).id == alert.id
    next_month = attrs.evolve(event, period_start=1_801_440_000.0)
    assert budget_alert(next_month, 5.0).id != alert.id
    lifetime = attrs.evolve(event, period="lifetime", period_start=None)
    assert budget_alert(lifetime, 5.0).data["period_start"] is None


def test_budget_event_goes_through_emit(secret: WebhookSecret) -> None:
    """`Alerts.budget_event` (the policy's callback) queues the alert via the thread."""
    outbox = MemoryAlertOutbox()
    alerts = Alerts(outbox, [WebhookEndpoint("http://127.0.0.1:9/x")], [secret])
    alerts.budget_event(_Budget())
    alerts.budget_event(_Budget())
    alerts.start()
    alerts.flush()
    alerts.close()
    assert [d.event.type for d in outbox.pending()] == ["budget.threshold"]


def test_the_alert_outbox_folder_is_per_store_beside_the_others(
    tmp_path: object,
) -> None:
    """One folder per store under the state folder (a path and its lmdb URL share it); the variable wins."""
    from pathlib import Path

    from zerfoo_cloud.alerts import alerts_folder

    env = {"XDG_STATE_HOME": "/state"}
    db = Path(str(tmp_path)) / "db"
    folder = alerts_folder(str(db), env)
    assert folder.parent == Path("/state/zerfoo-cloud/alerts")
    assert folder.name.startswith("db-")
    assert alerts_folder(f"lmdb://{db}", env) == folder
    assert alerts_folder(str(db) + "2", env) != folder
    pg = alerts_folder("postgresql://u:pw@db.internal:5432/zerfoo", env)
    assert pg.name.startswith("zerfoo-")
    assert "pw" not in str(pg)
    assert alerts_folder("postgresql://u:other@db.internal:5432/zerfoo", env) == pg
    assert alerts_folder(str(db), {**env, "ZERFOO_CLOUD_ALERTS_OUTBOX": "/x"}) == Path(
        "/x"
    )
