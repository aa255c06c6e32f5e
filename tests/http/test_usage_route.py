"""
Usage events take one route from a finished request to every recorder: the
meter's `UsageEvents` when it has one, shared by the server's own recorder.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import httpx
import pytest

from tests.http._support import AUTH, CHAT, Stack, asgi_json_app, chat
from zerfoo_cloud import CloudServer, TokenMeter, UsageEvent
from zerfoo_cloud.metering.usage_events import QUEUE_FULL, Recipient, UsageEvents
from zerfoo_cloud.stores.memory import MemoryBillingStore


class Recorder:
    """Keeps each event and the thread that handed it over; raises when told."""

    def __init__(self, *, fails: bool = False) -> None:
        self.events: list[UsageEvent] = []
        self.threads: set[int] = set()
        self.fails = fails

    def record(self, event: UsageEvent) -> None:
        self.threads.add(threading.get_ident())
        if self.fails:
            msg = "secret-in-message"
            raise RuntimeError(msg)
        self.events.append(event)


def _serve(server: CloudServer, requests: int) -> int:
    """Send *requests* chat requests; return the event loop's thread id."""

    async def go() -> int:
        handler = server.handler()
        transport = httpx.ASGITransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for _ in range(requests):
                response = await c.post(CHAT, json=chat(max_tokens=2), headers=AUTH)
                assert response.status_code == 200
        return threading.get_ident()

    return asyncio.run(go())


def _server(stack: Stack, meter: TokenMeter, **options: Any) -> CloudServer:
    stack.tenant()
    return CloudServer(asgi_json_app(report=(3, 2)), stack.tenants, meter, **options)


def test_server_and_meter_recorders_share_the_meters_route() -> None:
    """The server's recorder rides the meter's usage events: one writer, each
    recorder one event per request, never handed over on the event loop's
    thread, and a durable answer waits for both."""
    stack = Stack()
    own, extra = Recorder(), Recorder()
    meter = TokenMeter(MemoryBillingStore(), recorder=own)
    server = _server(stack, meter, recorder=extra)
    assert server.accounting._events is meter.usage_events
    loop_thread = _serve(server, 3)
    # Durable: the answers waited for the meter's usage events, which hold both.
    assert [e.completion_tokens for e in own.events] == [2, 2, 2]
    assert [e.completion_tokens for e in extra.events] == [2, 2, 2]
    assert loop_thread not in own.threads | extra.threads
    assert own.threads == extra.threads  # one writer thread for both
    assert server.close(5)
    meter.close()


def test_a_recorder_given_to_both_gets_one_event_per_request() -> None:
    """A recorder given to the meter and to the server is called once per request."""
    stack = Stack()
    both = Recorder()
    meter = TokenMeter(MemoryBillingStore(), recorder=both)
    server = _server(stack, meter, recorder=both)
    _serve(server, 2)
    assert server.close(5)
    assert len(both.events) == 2
    assert server.accounting.failures == 0
    meter.close()


def test_server_recorder_without_a_meter_recorder_gets_its_own_route() -> None:
    """With no recorder on the meter, the server's events still leave from a
    writer thread, and drain() waits for them."""
    stack = Stack()
    extra = Recorder()
    meter = TokenMeter(MemoryBillingStore())
    server = _server(stack, meter, recorder=extra)
    assert meter.usage_events is None
    loop_thread = _serve(server, 2)
    assert server.accounting.drain(5)
    assert len(extra.events) == 2
    assert loop_thread not in extra.threads
    meter.close()


def test_recorder_failures_are_counted_where_the_recorder_was_given(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing meter recorder counts in recorder_failures, a failing server
    recorder in accounting_failures; the logs name the type, never the message."""
    stack = Stack()
    own, extra = Recorder(fails=True), Recorder(fails=True)
    meter = TokenMeter(MemoryBillingStore(), recorder=own)
    server = _server(stack, meter, recorder=extra)
    with caplog.at_level(logging.WARNING):
        _serve(server, 1)
        assert server.close(5)
    assert meter.recorder_failures == 1
    assert server.accounting_failures == 1
    assert "RuntimeError" in caplog.text
    assert "secret-in-message" not in caplog.text
    meter.close()


def test_a_full_queue_tells_each_recipient() -> None:
    """Past max_pending an event is dropped and each of its recipients told why."""
    release = threading.Event()
    taken = threading.Event()

    class Slow:
        def record(self, event: UsageEvent) -> None:
            taken.set()
            release.wait(5)

    why: list[str] = []
    events = UsageEvents((Recipient(Slow(), why.append),), max_pending=1)
    event = UsageEvent("acme", "m", 1, 2, 0)
    events.publish(event)
    assert taken.wait(5)
    events.publish(event)
    assert why == [QUEUE_FULL]
    release.set()
    assert events.flush(5)
    events.writer.close(5)
