"""
The accounting invariant under fault injection, for ASGI, WSGI and the proxy.

For every request carrying a tenant's key, exactly one of these holds: the
app was never called and the client got an OpenAI-shaped error with one audit
entry; or it was called and there is one billing record and one audit entry,
and its concurrency slot and token reservation were settled (the tokens taken
from the bucket are the tokens billed). Each test makes one step of the
request path raise and checks that, then that the next request is served.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import httpx
import pytest

from tests._redis_servers import REDIS_URL, START_REDIS, missing, single_redis_up
from tests.http._invariant import ADAPTERS, SLOTS, Service
from tests.http._support import wait_until
from zerfoo_cloud import AuditLogger, TokenMeter
from zerfoo_cloud.http import asgi, wsgi
from zerfoo_cloud.http._policy import Policy
from zerfoo_cloud.http._response_meter import ResponseMeter
from zerfoo_cloud.http._usage import UsageSlot
from zerfoo_cloud.metrics import InFlight, Metrics
from zerfoo_cloud.stores.redis import RedisLimiterStore
from zerfoo_cloud.tenants import Tenant

CHAT = "/v1/chat/completions"
BODY = {
    "model": "toy-1",
    "messages": [{"role": "user", "content": "one two three"}],
    "max_tokens": 10,
}
RESERVE = 21  # prompt estimate 11 + max_tokens 10


def _boom(*_: object, **__: object) -> Any:
    msg = "injected fault"
    raise RuntimeError(msg)


class Fault(NamedTuple):
    """One injected fault and what the invariant then allows."""

    name: str
    inject: Callable[[pytest.MonkeyPatch, Service], None]
    called: bool = True
    mode: str = "ok"
    billed: bool = True
    audited: bool = True
    failure: bool = False


async def _boom_async(*_: object, **__: object) -> Any:
    _boom()


def _patch(target: object, name: str) -> Callable[[pytest.MonkeyPatch, Service], None]:
    """Make *name* raise, and its asyncio twin ``<name>_async`` if it has one."""

    def inject(mp: pytest.MonkeyPatch, service: Service) -> None:
        mp.setattr(target, name, _boom)
        if hasattr(target, name + "_async"):
            mp.setattr(target, name + "_async", _boom_async)

    return inject


def _read_body(mp: pytest.MonkeyPatch, service: Service) -> None:
    mp.setattr(wsgi if service.adapter == "wsgi" else asgi, "_read_body", _boom)


def _nothing(mp: pytest.MonkeyPatch, service: Service) -> None:
    pass


def _recorder(mp: pytest.MonkeyPatch, service: Service) -> None:
    mp.setattr(service, "recorder_fails", True)


FAULTS = [
    Fault("body read", _read_body, called=False, billed=False),
    Fault("inspect", _patch(Policy, "inspect"), called=False, billed=False),
    Fault("admit", _patch(Policy, "admit"), called=False, billed=False),
    Fault("app before sending", _nothing, mode="raise-before"),
    Fault("app after sending", _nothing, mode="raise-after"),
    Fault("meter feed", _patch(ResponseMeter, "feed")),
    Fault("meter close", _patch(ResponseMeter, "close")),
    Fault("meter usage", _patch(ResponseMeter, "usage")),
    Fault("usage slot", _patch(UsageSlot, "get")),
    Fault("settle", _patch(Policy, "settle")),
    Fault("end_request", _patch(Tenant, "end_request")),
    Fault(
        "billing record",
        _patch(TokenMeter, "record_request"),
        billed=False,
        failure=True,
    ),
    Fault(
        "audit entry", _patch(AuditLogger, "log_request"), audited=False, failure=True
    ),
    Fault("usage recorder", _recorder, failure=True),
    Fault("metrics start", _patch(Metrics, "request_started"), failure=True),
    Fault("metrics finish", _patch(InFlight, "finish"), failure=True),
    Fault("metrics refusal", _patch(Metrics, "request_finished")),
]


@pytest.fixture(
    scope="module",
    params=[*ADAPTERS, pytest.param("asgi-redis", marks=pytest.mark.redis)],
)
def service(request: pytest.FixtureRequest) -> Iterator[Service]:
    if request.param != "asgi-redis":
        with Service(request.param).running() as running:
            yield running
        return
    # The asyncio path: limits in Redis, on the frozen clock of the others.
    if not single_redis_up():
        missing(f"Redis is not running on 127.0.0.1:6379: start it with {START_REDIS}")
    store = RedisLimiterStore.from_url(
        REDIS_URL,
        prefix=f"zc-test:{uuid.uuid4().hex}:",
        trust_caller_clock=True,
    )
    try:
        with Service(request.param, limits=store).running() as running:
            yield running
            store.close()  # its asyncio client closes on the server's loop
    finally:
        store.close()
        cleaner = RedisLimiterStore.from_url(REDIS_URL, prefix=store._keys.prefix)
        cleaner.clear("")
        cleaner.close()


def _post(service: Service, key: str, mode: str) -> httpx.Response | None:
    headers = {"authorization": f"Bearer {key}", "x-test-mode": mode}
    try:
        return httpx.post(service.url + CHAT, json=BODY, headers=headers, timeout=10)
    except httpx.HTTPError:
        return None  # the response was cut short: the app failed mid-answer


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_each_fault_keeps_the_invariant(
    service: Service, fault: Fault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever step raises, the request is answered, billed, audited and settled."""
    tenant_id, key = service.new_tenant()
    calls = len(service.calls)
    failures = service.server.accounting_failures
    fault.inject(monkeypatch, service)
    response = _post(service, key, fault.mode)
    # Accounting may end just after the client has its answer.
    if fault.audited:
        wait_until(lambda: len(service.audits(tenant_id)) == 1)
    else:
        wait_until(lambda: service.server.accounting_failures > failures)
    service.settle_all()
    monkeypatch.undo()

    called = len(service.calls) > calls
    assert called == fault.called
    records = service.records(tenant_id)
    audits = service.audits(tenant_id)
    assert len(audits) == (1 if fault.audited else 0)
    assert service.free_slots(tenant_id) == SLOTS
    if not called:
        assert response is not None
        assert response.status_code >= 400
        error = response.json()["error"]
        assert {"message", "type", "param", "code"} <= error.keys()
        assert records == []
        assert service.tokens_spent(tenant_id) == 0
    elif fault.billed:
        assert len(records) == 1
        assert service.tokens_spent(tenant_id) == records[0].total_tokens
    else:
        assert records == []
        assert service.tokens_spent(tenant_id) == 12
    if response is not None:
        request_id = response.headers.get("x-request-id")
        assert request_id
        if records:
            assert request_id == records[0].request_id
    if fault.failure:
        assert service.server.accounting_failures > failures

    # The service is whole: the next request is served and billed its usage.
    served = _post(service, key, "ok")
    assert served is not None
    assert served.status_code == 200, served.text
    assert wait_until(lambda: len(service.audits(tenant_id)) == 1 + fault.audited)
    service.settle_all()
    assert service.records(tenant_id)[-1].total_tokens == 12
    assert service.free_slots(tenant_id) == SLOTS


def test_a_failed_usage_extraction_bills_the_reservation(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the response's usage cannot be read, the reservation is billed."""
    tenant_id, key = service.new_tenant()
    monkeypatch.setattr(ResponseMeter, "usage", _boom)
    response = _post(service, key, "ok")
    assert wait_until(lambda: len(service.audits(tenant_id)) == 1)
    service.settle_all()
    assert response is not None
    assert response.status_code == 200
    (record,) = service.records(tenant_id)
    assert record.total_tokens == RESERVE
