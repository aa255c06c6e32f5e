"""
A service under test for the accounting invariant: an OpenAI-like app served
as ASGI, as WSGI (``asgi-redis``: ASGI with its limits in Redis, the asyncio path),
or behind `UpstreamProxy` from a real upstream server, each
wrapped by a `CloudServer` with a meter, an audit logger, a usage recorder
and metrics, on a frozen clock.

The app's behaviour is chosen per request by the ``x-test-mode`` header
(the proxy forwards it upstream): ``ok`` answers a chat completion with
usage 7 + 5; ``raise-before`` raises before the response starts;
``raise-after`` raises after half the body; ``huge-usage`` reports
``prompt_tokens = 2**64``; ``stream`` streams three events and the usage;
``models`` answers a model list. Every call of the app is counted in
`Service.calls`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from tests.http._support import serve_asgi, serve_wsgi
from zerfoo_cloud import (
    AuditLogger,
    CloudServer,
    TenantConfig,
    TenantManager,
    TokenMeter,
    UsageEvent,
)
from zerfoo_cloud.http.proxy import UpstreamProxy
from zerfoo_cloud.metrics import Metrics
from zerfoo_cloud.stores.memory import MemoryAuditStore, MemoryBillingStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from zerfoo_cloud.http._types import Receive, Scope, Send
    from zerfoo_cloud.stores.protocols import LimiterStore
    from zerfoo_cloud.tenants import Tenant

ADAPTERS = ("asgi", "wsgi", "proxy")
NOW = 1_750_000_000.0
BUDGET = 100_000
SLOTS = 2
MODELS = ("toy-1", "toy-2", "toy-3")
USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
HUGE = 2**64


def _chat_body(mode: str) -> tuple[bytes, bytes]:
    usage: dict[str, int] = dict(USAGE)
    if mode == "huge-usage":
        usage = {"prompt_tokens": HUGE, "completion_tokens": 5}
    if mode == "models":
        doc: dict[str, Any] = {
            "object": "list",
            "data": [{"id": m, "object": "model", "owned_by": "t"} for m in MODELS],
        }
        return json.dumps(doc).encode(), b"application/json"
    if mode.startswith("model:"):
        doc = {"id": mode[6:], "object": "model", "owned_by": "t"}
        return json.dumps(doc).encode(), b"application/json"
    if mode == "stream":
        events = [
            b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
            b'data: {"choices":[{"index":0,"delta":{"content":"b"}}]}\n\n',
            b'data: {"choices":[],"usage":' + json.dumps(usage).encode() + b"}\n\n",
            b"data: [DONE]\n\n",
        ]
        return b"".join(events), b"text/event-stream"
    doc = {"object": "chat.completion", "choices": [], "usage": usage}
    return json.dumps(doc).encode(), b"application/json"


class Service:
    """
    One served stack: the app, its `CloudServer`, the stores behind it.
    *proxy_options* go to the `UpstreamProxy` of the ``proxy`` adapter.
    """

    def __init__(
        self, adapter: str, *, limits: LimiterStore | None = None, **proxy_options: Any
    ) -> None:
        self.adapter = adapter
        self.proxy_options: dict[str, Any] = {"read_timeout": 10, **proxy_options}
        self.calls: list[str] = []
        self.recorder_fails = False
        self.events: list[UsageEvent] = []
        self.tenants = TenantManager(limits=limits, clock=lambda: NOW)
        self.billing = MemoryBillingStore()
        self.audit_store = MemoryAuditStore()
        self.meter = TokenMeter(self.billing)
        self.audit = AuditLogger(self.audit_store)
        self.metrics = Metrics(registry=CollectorRegistry())
        self._ids = itertools.count()
        self.url = ""
        #: The upstream's base URL (the proxy only).
        self.upstream_url = ""
        self.server: CloudServer

    # -- the app ----------------------------------------------------------

    async def asgi_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app as ASGI."""
        while (await receive()).get("more_body"):
            pass
        mode = dict(scope["headers"]).get(b"x-test-mode", b"ok").decode()
        if scope["path"].startswith("/v1/models"):
            rest = scope["path"][len("/v1/models/") :]
            mode = f"model:{rest}" if rest else "models"
        self.calls.append(mode)
        if mode == "raise-before":
            msg = "the model crashed before answering"
            raise RuntimeError(msg)
        body, kind = _chat_body(mode)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", kind), (b"x-request-id", b"app-own")],
            }
        )
        half = len(body) // 2
        await send(
            {"type": "http.response.body", "body": body[:half], "more_body": True}
        )
        if mode == "raise-after":
            msg = "the model crashed mid-answer"
            raise RuntimeError(msg)
        await send({"type": "http.response.body", "body": body[half:]})

    def wsgi_app(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """The app as WSGI."""
        environ["wsgi.input"].read()
        mode = environ.get("HTTP_X_TEST_MODE", "ok")
        path = environ.get("PATH_INFO", "")
        if path.startswith("/v1/models"):
            rest = path[len("/v1/models/") :]
            mode = f"model:{rest}" if rest else "models"
        self.calls.append(mode)
        if mode == "raise-before":
            msg = "the model crashed before answering"
            raise RuntimeError(msg)
        body, kind = _chat_body(mode)
        start_response(
            "200 OK", [("content-type", kind.decode()), ("x-request-id", "app-own")]
        )
        return self._halves(body, mode)

    @staticmethod
    def _halves(body: bytes, mode: str) -> Iterator[bytes]:
        half = len(body) // 2
        yield body[:half]
        if mode == "raise-after":
            msg = "the model crashed mid-answer"
            raise RuntimeError(msg)
        yield body[half:]

    def record(self, event: UsageEvent) -> None:
        """The usage recorder: keeps events, or raises when told to."""
        if self.recorder_fails:
            msg = "the broker is down"
            raise OSError(msg)
        self.events.append(event)

    # -- serving ------------------------------------------------------------

    @contextlib.contextmanager
    def running(self) -> Iterator[Service]:
        """Serve the stack; yield self with `url` set."""
        options: dict[str, Any] = {
            "audit": self.audit,
            "recorder": self,
            "metrics": self.metrics,
        }
        if self.adapter == "wsgi":
            self.server = CloudServer(
                self.wsgi_app, self.tenants, self.meter, interface="wsgi", **options
            )
            with serve_wsgi(self.server.handler()) as url:
                self.url = url
                yield self
            return
        if self.adapter in {"asgi", "asgi-redis"}:
            self.server = CloudServer(
                self.asgi_app, self.tenants, self.meter, interface="asgi", **options
            )
            with serve_asgi(self.server.handler()) as url:
                self.url = url
                yield self
            return

        async def upstream_app(scope: Scope, receive: Receive, send: Send) -> None:
            # A plain function: uvicorn takes a bound method for ASGI 2.
            await self.asgi_app(scope, receive, send)

        with serve_asgi(upstream_app) as upstream:
            self.upstream_url = upstream
            proxy = UpstreamProxy(upstream, **self.proxy_options)
            self.server = CloudServer(
                proxy, self.tenants, self.meter, interface="asgi", **options
            )
            # The lifespan's shutdown closes the proxy's upstream connections.
            with serve_asgi(self.server.handler(), lifespan=True) as url:
                self.url = url
                yield self

    # -- the tenant and what it left ----------------------------------------

    def new_tenant(self, allow: tuple[str, ...] = ()) -> tuple[str, str]:
        """A fresh tenant: (id, key)."""
        n = next(self._ids)
        tenant_id, key = f"t{n}", f"zc-invariant-key-{n:06d}-abcdef"
        self.tenants.create(
            TenantConfig(
                tenant_id,
                key,
                rate_limit=0,
                token_budget=BUDGET,
                max_concurrent_requests=SLOTS,
                model_allow_list=allow,
            )
        )
        return tenant_id, key

    def settle_all(self) -> None:
        """Wait until everything finished is written."""
        assert self.server.close(10)

    def records(self, tenant_id: str) -> list[Any]:
        """The tenant's billing records."""
        return [r for r in self.billing.all() if r.tenant_id == tenant_id]

    def audits(self, tenant_id: str) -> list[Any]:
        """The tenant's audit entries."""
        return [e for e in self.audit_store.all() if e.tenant_id == tenant_id]

    def tenant(self, tenant_id: str) -> Tenant:
        """The tenant."""
        return self.tenants.get(tenant_id)

    def free_slots(self, tenant_id: str) -> int:
        """How many concurrency slots the tenant can take now (given back after)."""
        tenant = self.tenant(tenant_id)
        taken = 0
        while taken <= SLOTS and tenant.allow_concurrent():
            taken += 1
        for _ in range(taken):
            tenant.release_concurrent()
        return taken

    def tokens_spent(self, tenant_id: str) -> int:
        """Tokens taken from the tenant's bucket (the clock is frozen)."""
        return BUDGET - self.tenant(tenant_id).token_quota().remaining
