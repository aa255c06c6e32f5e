"""
What every response carries and what it may show, for ASGI, WSGI and the
proxy: ``x-request-id`` equal to the billing record's id, duplicate
credentials refused, absurd usage clamped and flagged, model lists filtered
by the allow list, and the proxy's path filter.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.http._invariant import ADAPTERS, HUGE, Service
from tests.http._support import wait_until
from zerfoo_cloud.metering import MAX_TOKENS

CHAT = "/v1/chat/completions"
BODY = {"model": "toy-1", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module", params=ADAPTERS)
def service(request: pytest.FixtureRequest) -> Iterator[Service]:
    with Service(request.param).running() as running:
        yield running


def _auth(key: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **extra}


def _settled(service: Service, tenant_id: str, audits: int) -> None:
    assert wait_until(lambda: len(service.audits(tenant_id)) >= audits)
    service.settle_all()


@pytest.mark.parametrize("mode", ["ok", "stream"])
def test_x_request_id_is_the_billing_record_id(service: Service, mode: str) -> None:
    """Answers, streamed or not, carry the id of their billing record; the app's own is kept aside."""
    tenant_id, key = service.new_tenant()
    response = httpx.post(
        service.url + CHAT, json=BODY, headers=_auth(key, **{"x-test-mode": mode})
    )
    assert response.status_code == 200
    _settled(service, tenant_id, 1)
    (record,) = service.records(tenant_id)
    assert response.headers["x-request-id"] == record.request_id
    assert response.headers.get_list("x-request-id") == [record.request_id]
    assert response.headers["x-upstream-request-id"] == "app-own"


def test_refusals_and_errors_carry_a_request_id(service: Service) -> None:
    """401, 403 and a 500 from the app carry x-request-id, in the header and the body."""
    _, key = service.new_tenant(allow=("toy-2",))
    unknown = httpx.post(
        service.url + CHAT, json=BODY, headers=_auth("zc-nobody-000000")
    )
    denied = httpx.post(service.url + CHAT, json=BODY, headers=_auth(key))
    _, other = service.new_tenant()
    failed = httpx.post(
        service.url + CHAT,
        json=BODY,
        headers=_auth(other, **{"x-test-mode": "raise-before"}),
    )
    assert (unknown.status_code, denied.status_code) == (401, 403)
    assert failed.status_code == 500
    ids = set()
    for response in (unknown, denied):
        request_id = response.headers["x-request-id"]
        assert response.json()["error"]["request_id"] == request_id
        ids.add(request_id)
    assert failed.headers["x-request-id"]
    ids.add(failed.headers["x-request-id"])
    assert len(ids) == 3


def test_a_client_request_id_is_only_a_logged_correlation_id(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    """The client's x-request-id never becomes the id; a valid one is logged, a bad one dropped."""
    tenant_id, key = service.new_tenant()
    with caplog.at_level(logging.INFO, logger="zerfoo_cloud.http"):
        good = httpx.post(
            service.url + CHAT,
            json=BODY,
            headers=_auth(key, **{"x-request-id": "my-trace-42"}),
        )
        bad = httpx.post(
            service.url + CHAT,
            json=BODY,
            headers=_auth(key, **{"x-request-id": "x" * 129}),
        )
        _settled(service, tenant_id, 2)
    assert good.headers["x-request-id"] != "my-trace-42"
    records = {r.request_id for r in service.records(tenant_id)}
    assert {good.headers["x-request-id"], bad.headers["x-request-id"]} == records
    assert (
        f"request {good.headers['x-request-id']}: client request id my-trace-42"
        in caplog.text
    )
    assert "x" * 129 not in caplog.text


def test_duplicate_credentials_are_refused(service: Service) -> None:
    """Two Authorization or two x-api-key headers: 400, audited, the app not called."""
    tenant_id, key = service.new_tenant()
    calls = len(service.calls)
    answers = [
        httpx.post(
            service.url + CHAT,
            json=BODY,
            headers=[
                ("authorization", f"Bearer {key}"),
                ("authorization", "Bearer zc-x"),
            ],
        ),
        httpx.post(
            service.url + CHAT,
            json=BODY,
            headers=[("x-api-key", key), ("x-api-key", key)],
        ),
    ]
    for response in answers:
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["type"], error["code"]) == (
            "invalid_request_error",
            "duplicate_header",
        )
    assert len(service.calls) == calls
    assert wait_until(
        lambda: sum(e.status_code == 400 for e in service.audit_store.all()) >= 2
    )
    service.settle_all()
    assert service.records(tenant_id) == []
    one = httpx.post(service.url + CHAT, json=BODY, headers=_auth(key))
    assert one.status_code == 200


def test_absurd_usage_is_clamped_billed_and_flagged(service: Service) -> None:
    """prompt_tokens = 2**64 is billed as the most a record holds, and the audit entry says so."""
    tenant_id, key = service.new_tenant()
    response = httpx.post(
        service.url + CHAT,
        json=BODY,
        headers=_auth(key, **{"x-test-mode": "huge-usage"}),
    )
    assert response.status_code == 200
    _settled(service, tenant_id, 1)
    (record,) = service.records(tenant_id)
    assert (record.input_tokens, record.output_tokens) == (MAX_TOKENS, 5)
    assert record.request_id == response.headers["x-request-id"]
    (entry,) = service.audits(tenant_id)
    assert entry.result.value == "usage_clamped"
    assert HUGE > MAX_TOKENS
    assert service.free_slots(tenant_id) == 2


def test_model_list_is_filtered_by_the_allow_list(service: Service) -> None:
    """A tenant sees only its models; one without an allow list sees all; others are 404."""
    tenant_id, key = service.new_tenant(allow=("toy-2",))
    _, open_key = service.new_tenant()
    listed = httpx.get(service.url + "/v1/models", headers=_auth(key))
    assert listed.status_code == 200
    assert [m["id"] for m in listed.json()["data"]] == ["toy-2"]
    assert int(listed.headers["content-length"]) == len(listed.content)
    everything = httpx.get(service.url + "/v1/models", headers=_auth(open_key))
    assert [m["id"] for m in everything.json()["data"]] == ["toy-1", "toy-2", "toy-3"]
    calls = len(service.calls)
    hidden = httpx.get(service.url + "/v1/models/toy-1", headers=_auth(key))
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "model_not_found"
    assert len(service.calls) == calls
    shown = httpx.get(service.url + "/v1/models/toy-2", headers=_auth(key))
    assert (shown.status_code, shown.json()["id"]) == (200, "toy-2")
    _settled(service, tenant_id, 3)
    assert len(service.records(tenant_id)) == 2


@pytest.mark.parametrize(
    "raw_path",
    [
        "/v1/..%5cadmin",
        "/v1/%2e%2e/admin",
        "/v1/models;x=1",
        "/v1/%3bmodels",
        "/v1/a%5c..%5cb",
    ],
)
def test_proxy_refuses_paths_that_escape(raw_path: str) -> None:
    """Backslashes, ';' and '..' in any spelling are refused (400) before reaching the upstream."""
    service = Service("proxy")
    with service.running():
        _, key = service.new_tenant()
        url = urlsplit(service.url)
        connection = http.client.HTTPConnection(
            url.hostname or "", url.port, timeout=10
        )
        try:
            connection.request("GET", raw_path, headers=_auth(key))
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        assert response.status == 400, body
        assert b"invalid_path" in body
        assert response.getheader("x-request-id")
        assert service.calls == []
