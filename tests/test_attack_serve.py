"""
Issue 12's attacks, replayed against real ``zerfoo-cloud serve`` processes:
an app served by two workers, and ``serve --upstream`` in front of a real
upstream server (`tests._attack_app` in both roles).

After every attack the invariant is counted on disk: each 2xx the client saw
has exactly one billing record (whose id is the response's ``x-request-id``)
and reached the app once; each refusal reached nothing; every request has
one audit entry; the tenant's concurrency slot came back.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from tests._attack_app import DEEP_MODEL
from tests._background import serving
from tests._serving import BIN, ROOT, free_port
from tests.sso._idp import make_keypair
from tests.test_serve import cli, idp_metadata_xml
from zerfoo_cloud import AuditLogger, TenantConfig, TenantManager, TokenMeter
from zerfoo_cloud.http.admin._sessions import SessionSigner
from zerfoo_cloud.metering import MAX_TOKENS, BillingRecord
from zerfoo_cloud.stores.lmdb import LMDBStores

pytestmark = pytest.mark.slow

ADMIN_KEY = "admin-key-of-the-attack-test"
SESSION_SECRET = "s" * 32
CHAT = "/v1/chat/completions"
#: Characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
#: The tenants of each store: id -> keyword arguments of TenantConfig.
TENANTS: dict[str, dict[str, Any]] = {
    "open": {},
    "one": {"max_concurrent_requests": 1},
    "toy2": {"model_allow_list": ("toy-2",), "max_concurrent_requests": 1},
    "small": {"token_budget": 1000, "max_concurrent_requests": 1},
    "deep": {"max_concurrent_requests": 1},
    "csv": {},
    "gone": {},
    "dup": {},
    "sess": {},
}


@attrs.frozen
class Service:
    """One running ``serve`` and what it writes."""

    kind: str
    url: str
    db: Path
    calls: Path
    log: Path
    keys: dict[str, str]


@attrs.frozen
class Counts:
    """What the store and the app saw of one tenant."""

    calls: int
    billed: tuple[BillingRecord, ...]
    audited: int


def _keys() -> dict[str, str]:
    return {t: "zc-" + secrets.token_urlsafe(32) for t in TENANTS}


def _create_tenants(db: Path, keys: dict[str, str]) -> None:
    with LMDBStores.open(db) as stores:
        tenants = TenantManager(stores.tenants, limits=stores.limits)
        for tenant_id, options in TENANTS.items():
            config = {"rate_limit": 0, "token_budget": 0, **options}
            tenants.create(TenantConfig(tenant_id, keys[tenant_id], **config))


def counts(service: Service, tenant_id: str) -> Counts:
    """The app calls, billing records and audit entries of *tenant_id* now."""
    now = datetime.now(timezone.utc)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    with LMDBStores.open(service.db) as stores:
        billed = TokenMeter(stores.billing).query(tenant_id, start, end)
        audited = AuditLogger(stores.audit).query(tenant_id, start, end)
    calls = len(service.calls.read_text().splitlines()) if service.calls.exists() else 0
    return Counts(calls, tuple(billed), len(audited))


def assert_invariant(
    service: Service,
    tenant_id: str,
    before: Counts,
    responses: Sequence[httpx.Response],
) -> tuple[BillingRecord, ...]:
    """
    Check issue 12's invariant over *responses* of *tenant_id*; return the new
    billing records.
    """
    after = counts(service, tenant_id)
    ok = [r for r in responses if r.is_success]
    new = after.billed[len(before.billed) :]
    for response in responses:
        assert response.headers.get("x-request-id"), response.headers
        if not response.is_success:
            error = response.json()["error"]
            assert {"message", "type", "param", "code"} <= error.keys(), error
    ids = {r.headers["x-request-id"] for r in responses}
    billed = {r.request_id: r for r in new}
    assert len(billed) == len(new), new
    assert set(billed) <= ids, (new, [r.status_code for r in responses])
    assert {r.headers["x-request-id"] for r in ok} <= set(billed)
    for response in responses:
        if not response.is_success and response.headers["x-request-id"] in billed:
            # The wrapped app (the proxy) answered an error itself: billed nothing.
            record = billed[response.headers["x-request-id"]]
            assert record.input_tokens == record.output_tokens == 0, record
    assert after.calls - before.calls == len(ok)
    assert after.audited - before.audited == len(responses)
    return new


def post(
    service: Service, tenant_id: str, body: bytes | dict[str, Any], **kw: Any
) -> httpx.Response:
    """POST *body* (JSON text or data) to the chat endpoint with the tenant's key."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {
        "Authorization": f"Bearer {service.keys[tenant_id]}",
        "content-type": "application/json",
        **kw.pop("headers", {}),
    }
    return httpx.post(
        service.url + CHAT, content=content, headers=headers, timeout=30, **kw
    )


def message(content: str = "hello", **kw: Any) -> dict[str, Any]:
    """A chat request body for model toy-2."""
    return {"model": "toy-2", "messages": [{"role": "user", "content": content}], **kw}


def slot_is_free(service: Service, tenant_id: str) -> None:
    """Two requests one after the other both pass a 1-slot tenant: nothing leaked."""
    for _ in range(2):
        answer = post(service, tenant_id, message())
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    """The app served by 2 workers, and the proxy (2 workers) in front of an upstream."""
    root = tmp_path_factory.mktemp("attack")
    idp = root / "idp.xml"
    idp.write_text(idp_metadata_xml(make_keypair("idp").cert_b64))
    base_env = {
        "PATH": str(BIN),
        "PYTHONPATH": str(ROOT),
        "ZERFOO_CLOUD_ADMIN_KEY": ADMIN_KEY,
        "ZERFOO_CLOUD_SESSION_SECRET": SESSION_SECRET,
    }
    common = ["--workers", "2", "--port", "0", "--header-timeout", "1"]
    common += ["--saml-metadata", f"sess={idp}", "--public-url", "https://x.test"]
    found: dict[str, Service] = {}
    with ExitStack() as stack:
        upstream_calls = root / "upstream-calls"
        upstream = stack.enter_context(
            serving(
                [
                    str(BIN / "python"),
                    *("-m", "uvicorn", "tests._attack_app:app", "--port", "0"),
                ],
                cwd=ROOT,
                env={**base_env, "ATTACK_CALLS_FILE": str(upstream_calls)},
            )
        )
        for kind, target, calls in (
            ("app", ["tests._attack_app:app"], root / "app-calls"),
            ("proxy", ["--upstream", upstream], upstream_calls),
        ):
            db = root / f"{kind}-db"
            keys = _keys()
            _create_tenants(db, keys)
            workdir = root / kind
            workdir.mkdir()
            url = stack.enter_context(
                serving(
                    [
                        str(BIN / "zerfoo-cloud"),
                        "--db",
                        str(db),
                        "serve",
                        *target,
                        *common,
                    ],
                    cwd=workdir,
                    env={**base_env, "ATTACK_CALLS_FILE": str(root / "app-calls")},
                )
            )
            log = next(workdir.glob(".server-*.log"))
            found[kind] = Service(kind, url, db, calls, log, keys)
        yield found
        for service in found.values():
            text = service.log.read_text(errors="replace")
            assert "Traceback" not in text, text[-4000:]
            for key in service.keys.values():
                assert key not in text
            assert ADMIN_KEY not in text


@pytest.fixture(params=["app", "proxy"])
def service(request: pytest.FixtureRequest, services: dict[str, Service]) -> Service:
    """Each of the two services in turn."""
    found: Service = services[request.param]
    return found


def test_deep_model_echoed_is_refused_and_deep_answers_are_billed(
    service: Service,
) -> None:
    """Finding 1: a model of 968 nested arrays is a 400; 5 deep answers are 5 billed 200s."""
    before = counts(service, "deep")
    body = (
        b'{"model": '
        + DEEP_MODEL.encode()
        + b', "messages": [{"role": "user", "content": "hi"}]}'
    )
    refused = post(service, "deep", body)
    assert refused.status_code == 400, refused.text
    answers = [post(service, "deep", message("deep-response")) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    new = assert_invariant(service, "deep", before, [refused, *answers])
    # Usage too deep to read: each answer is billed its reservation.
    assert all(r.input_tokens > 0 and r.output_tokens > 0 for r in new), new
    slot_is_free(service, "deep")


def test_deep_streamed_answer_is_billed(service: Service) -> None:
    """Finding 1, streamed: SSE chunks holding a deep model still bill their usage."""
    before = counts(service, "deep")
    answer = post(
        service,
        "deep",
        message("deep-response", stream=True, stream_options={"include_usage": True}),
    )
    assert answer.status_code == 200
    (record,) = assert_invariant(service, "deep", before, [answer])
    # Usage too deep to read: one token per streamed event.
    assert record.input_tokens > 0
    assert record.output_tokens > 0
    slot_is_free(service, "deep")


@pytest.mark.parametrize("tenant_id", ["toy2", "one"])
def test_models_the_policy_cannot_read_are_400(
    service: Service, tenant_id: str
) -> None:
    """Finding 2: no, null, number, list or object model, and unreadable JSON, never reach the app."""
    before = counts(service, tenant_id)
    messages = [{"role": "user", "content": "hi"}]
    bodies: list[dict[str, Any]] = [
        {"messages": messages},
        {"model": None, "messages": messages},
        {"model": 2, "messages": messages},
        {"model": ["toy-2"], "messages": messages},
        {"model": {"id": "toy-2"}, "messages": messages},
    ]
    answers = [post(service, tenant_id, body) for body in bodies]
    big = b'{"model": "toy-2", "messages": [], "n": ' + b"9" * 4301 + b"}"
    answers.append(post(service, tenant_id, big))
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["type"] == "invalid_request_error"
    assert_invariant(service, tenant_id, before, answers)
    slot_is_free(service, tenant_id)


def test_hostile_bodies_get_openai_errors(service: Service) -> None:
    """Finding 3: JSON nested 5,000 deep and a lone surrogate with stream are audited 400s."""
    before = counts(service, "one")
    deep = b'{"model": "toy-2", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    surrogate = (
        b'{"model": "toy-2", "stream": true, "messages": '
        b'[{"role": "user", "content": "\\udc00"}]}'
    )
    answers = [post(service, "one", deep), post(service, "one", surrogate)]
    answers.append(post(service, "one", b"\xff\xfe not json"))
    answers.append(post(service, "one", b'{"model": "toy-2", "model": "toy-1"'))
    for answer in answers:
        assert answer.status_code == 400, answer.text
    assert_invariant(service, "one", before, answers)
    slot_is_free(service, "one")


def test_token_budget_is_a_cap(service: Service) -> None:
    """Finding 4: max_tokens over the whole budget is 429 at once; absurd max_tokens is 400."""
    before = counts(service, "small")
    over = post(service, "small", message(max_tokens=50000))
    assert over.status_code == 429, over.text
    assert "Limit 1000, Requested" in over.json()["error"]["message"]
    absurd = [
        post(service, "small", message(max_tokens=n))
        for n in (18446744073709551616, -1, 2**63, "1000", 1.5)
    ]
    for answer in absurd:
        assert answer.status_code == 400, answer.text
    at_limit = post(service, "small", message(max_tokens=900))
    assert at_limit.status_code == 200, at_limit.text
    assert_invariant(service, "small", before, [over, *absurd, at_limit])


def test_absurd_upstream_usage_is_clamped_and_billed(service: Service) -> None:
    """Finding 12: prompt_tokens 2**64 from the app is billed, clamped to the store's range."""
    before = counts(service, "open")
    answer = post(service, "open", message("huge-usage"))
    assert answer.status_code == 200
    (record,) = assert_invariant(service, "open", before, [answer])
    assert record.input_tokens == MAX_TOKENS


def test_two_authorization_headers_are_400(service: Service) -> None:
    """Finding 11: duplicate Authorization on inference and /admin is refused."""
    before = counts(service, "dup")
    key = service.keys["dup"]
    headers = [
        ("authorization", f"Bearer {key}"),
        ("authorization", "Bearer zc-someone-else-entirely-000000000000"),
        ("content-type", "application/json"),
    ]
    inference = httpx.post(
        service.url + CHAT,
        content=json.dumps(message()).encode(),
        headers=headers,
        timeout=30,
    )
    assert inference.status_code == 400, inference.text
    admin = httpx.get(
        service.url + "/admin/tenants",
        headers=[
            ("authorization", f"Bearer {ADMIN_KEY}"),
            ("authorization", "Bearer wrong"),
        ],
        timeout=30,
    )
    assert admin.status_code == 400, admin.text
    after = counts(service, "dup")
    assert after.calls == before.calls
    assert not after.billed[len(before.billed) :]


@pytest.mark.parametrize(
    "path", ["/v1/..\\admin", "/v1/%2e%2e/admin", "/v1/models;x=1", "/v1/./models"]
)
def test_proxy_refuses_dotted_and_param_paths(
    services: dict[str, Service], path: str
) -> None:
    """Finding 11: the proxy does not forward ``..``, a backslash or ``;`` params."""
    service = services["proxy"]
    before = counts(service, "open")
    answer = raw_get(service, path, service.keys["open"])
    assert 400 <= answer.status_code < 500, answer.text
    assert_invariant(service, "open", before, [answer])


def raw_get(service: Service, path: str, key: str) -> httpx.Response:
    """GET *path* exactly as written (no client normalises it) and read the answer."""
    port = int(service.url.rsplit(":", 1)[1])
    request = (
        f"GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n"
        "connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request.encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [
        (name, value) for name, _, value in (line.partition(": ") for line in lines[1:])
    ]
    return httpx.Response(int(lines[0].split()[1]), headers=headers, content=body)


def test_models_are_filtered_by_the_allow_list(service: Service) -> None:
    """Operator: /v1/models lists only the tenant's models."""
    before = counts(service, "toy2")
    answer = httpx.get(
        service.url + "/v1/models",
        headers={"Authorization": f"Bearer {service.keys['toy2']}"},
        timeout=30,
    )
    assert answer.status_code == 200
    assert [m["id"] for m in answer.json()["data"]] == ["toy-2"]
    assert_invariant(service, "toy2", before, [answer])


def test_every_response_has_a_request_id(service: Service) -> None:
    """Operator: x-request-id on 200, 4xx and unauthenticated answers; a client's id is only correlation."""
    for answer in (
        httpx.get(service.url + "/v1/models", timeout=30),
        httpx.get(service.url + "/healthz", timeout=30),
        post(service, "open", message(), headers={"x-request-id": "mine"}),
    ):
        assert answer.headers.get("x-request-id"), answer.headers
        assert answer.headers["x-request-id"] != "mine"
    refused = httpx.get(service.url + "/v1/models", timeout=30)
    assert refused.json()["error"]["request_id"] == refused.headers["x-request-id"]


def test_csv_cells_are_never_formulas(service: Service) -> None:
    """Finding 10: hostile model names come out of every CSV escaped."""
    names = ['=HYPERLINK("http://x","y")', "@SUM(A1)", "+1+1", "-2", "\n=1+1"]
    for name in names:
        answer = post(service, "csv", {**message(), "model": name})
        assert answer.status_code == 200, answer.text
    outputs = [
        cli(service.db, "usage", "report", "--format", "csv").stdout,
        cli(service.db, "usage", "export", "--format", "csv").stdout,
        cli(service.db, "audit", "export", "--format", "csv").stdout,
    ]
    for output in outputs:
        for row in csv.reader(io.StringIO(output)):
            for cell in row:
                assert not cell.startswith(FORMULA_STARTS), (cell, output[:300])


def test_deleted_tenants_stay_in_reports(service: Service) -> None:
    """Operator: usage of a deleted tenant stays in usage report and the admin usage route."""
    assert post(service, "gone", message()).status_code == 200
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    deleted = httpx.delete(service.url + "/admin/tenants/gone", headers=admin)
    assert deleted.status_code == 204
    report = json.loads(cli(service.db, "usage", "report", "--format", "json").stdout)
    assert "gone" in json.dumps(report)
    usage = httpx.get(service.url + "/admin/tenants/gone/usage", headers=admin)
    assert usage.status_code == 200, usage.text
    assert "gone" in usage.text


def test_a_session_dies_with_its_tenant(service: Service) -> None:
    """Finding 9: a session issued before delete + re-create rotates nothing."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with LMDBStores.open(service.db) as stores:
        record = TenantManager(stores.tenants).get("sess").record
    token = SessionSigner(SESSION_SECRET.encode()).issue(
        "sess", "alice@example.com", incarnation=record.incarnation
    )
    session = {"Authorization": f"Bearer {token}"}
    assert httpx.get(service.url + "/admin/tenants/sess", headers=session).is_success
    assert httpx.delete(service.url + "/admin/tenants/sess", headers=admin).is_success
    again = httpx.post(
        service.url + "/admin/tenants",
        json={"id": "sess", "rate_limit": 0, "token_budget": 0},
        headers=admin,
    )
    assert again.status_code == 201, again.text
    rotated = httpx.post(
        service.url + "/admin/tenants/sess/rotate-key", headers=session
    )
    assert rotated.status_code == 401, rotated.text
    assert "api_key" not in rotated.text


def test_keys_in_urls_and_metrics_stay_private(service: Service) -> None:
    """Findings 7 and 8: keys in a query or path are not logged; /metrics is not public."""
    key = service.keys["open"]
    auth = {"Authorization": f"Bearer {key}"}
    httpx.get(f"{service.url}/v1/models?api_key={key}", timeout=30)
    httpx.get(f"{service.url}/v1/models/{key}", headers=auth, timeout=30)
    metrics = httpx.get(service.url + "/metrics", timeout=30)
    assert metrics.status_code in {401, 403, 404}
    assert "open" not in metrics.text
    time.sleep(0.3)
    assert key not in service.log.read_text(errors="replace")


def _send_head(url: str, head: bytes, chunk: int = 65536) -> bytes:
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            for i in range(0, len(head), chunk):
                s.sendall(head[i : i + chunk])
        except OSError:
            pass
        try:
            return s.recv(4096)
        except OSError:
            return b""


def test_huge_and_slow_heads_are_bounded(service: Service) -> None:
    """Finding 6: a 1 MB header and a 4 MB one are 431 (or closed); a slow head is dropped."""
    for size in (1024 * 1024, 4 * 1024 * 1024):
        head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * size
        answer = _send_head(service.url, head)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:100]
    port = int(service.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        answer = slow.recv(4096)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 20
    assert httpx.get(service.url + "/healthz", timeout=30).status_code == 200


def test_readyz_follows_the_upstream(tmp_path: Path) -> None:
    """Operator: with the upstream down, /healthz is ok and /readyz is 503."""
    dead = f"http://127.0.0.1:{free_port()}"
    args = [str(BIN / "zerfoo-cloud"), "--db", str(tmp_path / "db"), "serve"]
    args += ["--upstream", dead, "--port", "0"]
    with serving(args, cwd=tmp_path, env={"PATH": str(BIN)}) as url:
        assert httpx.get(url + "/healthz", timeout=30).status_code == 200
        ready = httpx.get(url + "/readyz", timeout=30)
        assert ready.status_code == 503, ready.text


def test_audit_chain_verifies(services: dict[str, Service]) -> None:
    """After every attack, each store's audit chain still verifies."""
    for service in services.values():
        done = subprocess.run(
            [str(BIN / "zerfoo-cloud"), "--db", str(service.db), "audit", "verify"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
