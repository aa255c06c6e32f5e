"""
`CloudServer` and `billing_middleware`: the entry points of the HTTP layer.
"""

from __future__ import annotations

import contextvars
import inspect
import time
from typing import TYPE_CHECKING, Any, Literal

from zerfoo_cloud.errors import (
    BudgetExceededError,
    BudgetUnenforceableError,
    InvalidConfigError,
    ModelNotAllowedError,
    RateLimitedError,
    RequestTooLargeError,
    UnpricedModelError,
)
from zerfoo_cloud.http._accounting import Accounting
from zerfoo_cloud.http._policy import (
    Finished,
    Policy,
    PolicyOptions,
    audit_result,
    describe_failure,
)
from zerfoo_cloud.http.asgi import BillingMiddleware, CloudMiddleware
from zerfoo_cloud.http.wsgi import WSGIBillingMiddleware, WSGICloudMiddleware

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.audit import AuditLogger
    from zerfoo_cloud.budgets.events import BudgetEvent
    from zerfoo_cloud.http._policy import RequestInfo, ResourcePinner, Ticket
    from zerfoo_cloud.http._types import Receive, Scope, Send
    from zerfoo_cloud.http.admin import AdminAPI
    from zerfoo_cloud.metering import TokenMeter, UsageRecorder
    from zerfoo_cloud.metrics import InFlight, Metrics
    from zerfoo_cloud.pricing import PriceTable
    from zerfoo_cloud.tenants import Tenant, TenantManager

__all__ = ["CloudServer", "billing_middleware", "detect_interface"]

Interface = Literal["asgi", "wsgi"]


def detect_interface(app: object) -> Interface:
    """
    Return ``"asgi"`` if *app* is an ASGI callable (a coroutine function, or
    an object whose ``__call__`` is one), else ``"wsgi"``.

    Raises:
        InvalidConfigError: *app* is not callable.

    .. versionadded:: 0.1.0
    """
    if not callable(app):
        msg = f"the app must be an ASGI or WSGI callable, not {type(app).__name__}"
        raise InvalidConfigError(msg, field="app")
    if inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(
        getattr(app, "__call__", None)  # noqa: B004 - we want the method itself
    ):
        return "asgi"
    return "wsgi"


def _interface(app: object, interface: str | None) -> Interface:
    if interface is None:
        return detect_interface(app)
    if interface not in ("asgi", "wsgi"):
        msg = f'interface must be "asgi" or "wsgi", not {interface!r}'
        raise InvalidConfigError(msg, field="interface")
    return "asgi" if interface == "asgi" else "wsgi"


# The in-flight token of the request being served: set when it is admitted,
# finished when it is accounted (same task, or same WSGI thread).
_FLIGHT: contextvars.ContextVar[InFlight | None] = contextvars.ContextVar(
    "zerfoo_cloud_flight", default=None
)
_STARTED: contextvars.ContextVar[float] = contextvars.ContextVar(
    "zerfoo_cloud_started", default=0.0
)


def _limit_of(exc: BaseException) -> str | None:
    if isinstance(exc, RateLimitedError):
        return exc.limit
    if isinstance(exc, (BudgetExceededError, BudgetUnenforceableError)):
        return "budget"
    if isinstance(exc, (ModelNotAllowedError, UnpricedModelError)):
        return "model"
    if isinstance(exc, RequestTooLargeError):
        return "body_size"
    return None


class _MeteredPolicy(Policy):
    """
    The policy, also counting admissions and refusals in `Metrics`.
    """

    def __init__(
        self,
        tenants: TenantManager,
        options: PolicyOptions,
        *,
        resources: ResourcePinner | None,
        metrics: Metrics,
        report: Callable[[str, str | None], None],
        prices: PriceTable | None = None,
        clock: Clock = time.time,
        budget_events: Callable[[BudgetEvent], None] | None = None,
    ) -> None:
        super().__init__(
            tenants,
            options,
            resources=resources,
            prices=prices,
            clock=clock,
            budget_events=budget_events,
        )
        self.metrics = metrics
        # Logs and counts a failed step: `Accounting.note_failure`.
        self.report = report

    def authenticate(self, api_key: str | None) -> Tenant:
        _STARTED.set(time.perf_counter())
        return super().authenticate(api_key)

    async def authenticate_async(self, api_key: str | None) -> Tenant:
        # Set here: a lookup in a worker thread sets it in that thread's copy.
        _STARTED.set(time.perf_counter())
        return await super().authenticate_async(api_key)

    def admit(self, tenant: Tenant, info: RequestInfo) -> Ticket:
        return self._started(tenant, super().admit(tenant, info))

    async def admit_async(self, tenant: Tenant, info: RequestInfo) -> Ticket:
        return self._started(tenant, await super().admit_async(tenant, info))

    def _started(self, tenant: Tenant, ticket: Ticket) -> Ticket:
        # Count the admitted request in flight (metrics never refuse it).
        try:
            stale = _FLIGHT.get()
            if stale is not None:  # a request of this thread that never finished
                stale.release()
            _FLIGHT.set(self.metrics.request_started(tenant.id))
        except Exception as exc:  # noqa: BLE001 - metrics never refuse an admitted request
            _FLIGHT.set(None)
            self.report(describe_failure("metrics", exc), ticket.request_id)
        return ticket

    def refuse(
        self,
        exc: BaseException,
        tenant: Tenant | None,
        request: tuple[str, str, str, str],
        *,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[Any, Finished]:
        out = super().refuse(
            exc,
            tenant,
            request,
            request_id=request_id,
            correlation_id=correlation_id,
        )
        limit = _limit_of(exc)
        if limit is not None:
            try:
                self.metrics.rejected(None if tenant is None else tenant.id, limit)
            except Exception as error:  # noqa: BLE001 - the refusal still goes out
                self.report(describe_failure("metrics", error), request_id)
        return out


class _MeteredAccounting(Accounting):
    """
    The accounting, also counting every finished request in `Metrics`.
    """

    def __init__(self, meter: TokenMeter, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(meter, **kwargs)
        self.metrics = metrics

    def account(self, finished: Finished) -> None:
        super().account(finished)
        try:
            self._count(finished)
        except Exception as exc:  # noqa: BLE001 - logged and counted
            self.note_failure(describe_failure("metrics", exc), finished.request_id)

    def _count(self, finished: Finished) -> None:
        if finished.overrun:
            self.metrics.budget_overrun(finished.tenant_id or None)
        result = audit_result(finished.status).value
        usage = finished.usage
        prompt, completion = (
            (0, 0)
            if usage is None
            else (
                usage.prompt_tokens,
                usage.completion_tokens,
            )
        )
        flight = _FLIGHT.get() if usage is not None else None
        if flight is not None:
            _FLIGHT.set(None)
            flight.finish(finished.model, result, prompt, completion)
            return
        started = _STARTED.get()
        self.metrics.request_finished(
            finished.tenant_id or None,
            finished.model or None,
            result,
            time.perf_counter() - started if started else 0.0,
            prompt,
            completion,
        )


class _Front:
    """
    Routes the admin API and ``/metrics`` before the tenant policy (ASGI).
    """

    def __init__(
        self,
        handler: Any,
        *,
        admin: AdminAPI | None,
        metrics: Any,
        metrics_path: str,
    ) -> None:
        self.handler = handler
        self.admin = admin
        self.metrics = metrics
        self.metrics_path = metrics_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if self.metrics is not None and path == self.metrics_path:
                await self.metrics(scope, receive, send)
                return
            if self.admin is not None and self.admin.handles(path):
                await self.admin(scope, receive, send)
                return
        await self.handler(scope, receive, send)


class _WSGIFront:
    """
    Serves ``/metrics`` before the tenant policy (WSGI).
    """

    def __init__(self, handler: Any, metrics: Metrics, metrics_path: str) -> None:
        self.handler = handler
        self.metrics = metrics
        self.metrics_path = metrics_path

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == self.metrics_path:
            from zerfoo_cloud.metrics import CONTENT_TYPE

            if environ.get("REQUEST_METHOD") not in {"GET", "HEAD"}:
                start_response(
                    "405 Method Not Allowed",
                    [("Allow", "GET, HEAD"), ("Content-Length", "0")],
                )
                return [b""]
            body = self.metrics.render()
            start_response(
                "200 OK",
                [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))],
            )
            return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]
        result: Iterable[bytes] = self.handler(environ, start_response)
        return result


class CloudServer:
    """
    Wraps an inference app (ASGI or WSGI) into a multi-tenant service.

    Args:
        app: an ASGI or WSGI callable (FastAPI, Starlette, Flask, a bare
            function, ...).
        tenants: authenticates keys and enforces the tenants' limits.
        meter: receives one billing record per admitted request. When it
            has a price table (``TokenMeter(prices=...)``), each record
            carries its cost, and a request for a model the table cannot
            price is refused with 403 ``model_not_priced`` before the app
            runs.
        audit: receives one audit entry per request (admitted or refused).
        recorder: receives one `zerfoo_cloud.UsageEvent` per admitted
            request (besides the meter's own recorder, if it has one).
        resources: a `zerfoo_cloud.ResourceManager` (or anything with
            ``touch(model)`` and ``use(model)``): the model of each request
            is touched and pinned while the request runs.
        interface: ``"asgi"`` or ``"wsgi"``; detected when ``None``.
        max_body_bytes: larger request bodies get 413 (0: no limit).
        default_estimate: tokens reserved for a body that is not JSON.
        default_max_tokens: completion tokens reserved when the request names
            no ``max_tokens``.
        include_usage: ask the app for the usage of streamed completions
            (``stream_options.include_usage``), and hide the extra chunk from
            clients that did not ask for it.
        durable: send the last byte of each response only once its billing
            record and audit entry are durable, and a refusal only once its
            audit entry is (the default; requests finishing together share
            one commit). ``False`` answers without waiting: records made in
            the last few milliseconds before a crash are then lost.
        health_path: the path answered with the health status, no key needed.
        admin: a `zerfoo_cloud.http.admin.AdminAPI` served at ``/admin/...``
            and ``/sso/...`` (ASGI apps only).
        metrics: a `zerfoo_cloud.metrics.Metrics` that counts every request
            and is served at *metrics_path* (no key needed: expose that path
            only to your Prometheus).
        metrics_path: where *metrics* is served.
        clock: the time source of usage events.
        budget_events: called with every `zerfoo_cloud.budgets.BudgetEvent`
            (a spend budget's threshold reached, or overrun), on the event
            loop: it must not block (hand the event to a thread or queue).

    Raises:
        InvalidConfigError: an option is out of range, or *app* is not callable.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        app: Any,
        tenants: TenantManager,
        meter: TokenMeter,
        *,
        audit: AuditLogger | None = None,
        recorder: UsageRecorder | None = None,
        resources: ResourcePinner | None = None,
        interface: Interface | None = None,
        max_body_bytes: int = 32 * 1024 * 1024,
        default_estimate: int = 1024,
        default_max_tokens: int = 512,
        include_usage: bool = True,
        durable: bool = True,
        health_path: str = "/healthz",
        admin: AdminAPI | None = None,
        metrics: Metrics | None = None,
        metrics_path: str = "/metrics",
        clock: Clock = time.time,
        budget_events: Callable[[BudgetEvent], None] | None = None,
    ) -> None:
        self.app = app
        self.interface: Interface = _interface(app, interface)
        if admin is not None and self.interface != "asgi":
            msg = (
                "the admin API is an ASGI app: serve a WSGI app through an "
                "ASGI adapter (zerfoo-cloud serve does) to use it"
            )
            raise InvalidConfigError(msg, field="admin")
        self.audit = audit
        self.admin = admin
        self.metrics = metrics
        self.options = PolicyOptions(
            max_body_bytes=max_body_bytes,
            default_estimate=default_estimate,
            default_max_tokens=default_max_tokens,
            include_usage=include_usage,
            durable=durable,
            health_path=health_path,
        )
        if metrics is None:
            self.policy = Policy(
                tenants,
                self.options,
                resources=resources,
                prices=meter.prices,
                clock=meter.clock,
                budget_events=budget_events,
            )
            self.accounting = Accounting(
                meter, audit=audit, recorder=recorder, clock=clock
            )
        else:
            self.accounting = _MeteredAccounting(
                meter, metrics, audit=audit, recorder=recorder, clock=clock
            )
            self.policy = _MeteredPolicy(
                tenants,
                self.options,
                resources=resources,
                metrics=metrics,
                report=self.accounting.note_failure,
                prices=meter.prices,
                clock=meter.clock,
                budget_events=budget_events,
            )
            if resources is not None and hasattr(resources, "stats"):
                metrics.track_resources(resources)  # type: ignore[arg-type]
        self._handler: Any
        if self.interface == "asgi":
            handler: Any = CloudMiddleware(app, self.policy, self.accounting)
            if admin is not None or metrics is not None:
                from zerfoo_cloud.metrics import metrics_app

                handler = _Front(
                    handler,
                    admin=admin,
                    metrics=None if metrics is None else metrics_app(metrics),
                    metrics_path=metrics_path,
                )
            self._handler = handler
        else:
            wsgi: Any = WSGICloudMiddleware(app, self.policy, self.accounting)
            if metrics is not None:
                wsgi = _WSGIFront(wsgi, metrics, metrics_path)
            self._handler = wsgi

    @property
    def tenants(self) -> TenantManager:
        """
        The tenant manager (create, update and delete tenants through it).
        """
        return self.policy.tenants

    @property
    def meter(self) -> TokenMeter:
        """
        The token meter (query billing records through it).
        """
        meter = self.accounting.meter
        assert meter is not None
        return meter

    @property
    def healthy(self) -> bool:
        """
        What ``/healthz`` reports.
        """
        return self.policy.healthy

    def set_healthy(self, healthy: bool) -> None:
        """
        Make ``/healthz`` answer 200 ``{"status":"ok"}`` (``True``) or 503
        ``{"status":"degraded"}`` (``False``).
        """
        self.policy.healthy = bool(healthy)

    def handler(self) -> Any:
        """
        Return the wrapped app: an ASGI app for an ASGI app, a WSGI app for a
        WSGI app. Serve it with any server (uvicorn, hypercorn, gunicorn,
        waitress, ...).
        """
        return self._handler

    @property
    def accounting_failures(self) -> int:
        """
        How many billing records, usage events or audit entries could not be
        written (each is logged on the ``zerfoo_cloud.http`` logger).
        """
        return self.accounting.failures

    def close(self, timeout: float | None = 30.0) -> bool:
        """
        Wait until every finished request is recorded, then flush the meter
        and the audit logger (it does not close them).

        Returns:
            ``False`` if the queued records were not all written within
            *timeout* seconds.
        """
        drained = self.accounting.drain(timeout)
        self.accounting.flush_now()
        if self.audit is not None:
            self.audit.flush()
        return drained


def billing_middleware(
    recorder: UsageRecorder,
    *,
    interface: Interface | None = None,
    tenant_id: Callable[[Any], str] | None = None,
    include_usage: bool = True,
    clock: Clock = time.time,
) -> Callable[[Any], Any]:
    """
    Return ``wrap(app) -> app``: metering alone, for ASGI and WSGI apps.

    The wrapped app publishes one `zerfoo_cloud.UsageEvent` per request to
    *recorder*, with the usage from `zerfoo_cloud.report_usage`, the JSON
    ``usage`` or the SSE chunks. The tenant id is the one authenticated by a
    `CloudServer` around it, else ``tenant_id(scope_or_environ)``, else ``""``.

    Args:
        recorder: where usage events go.
        interface: ``"asgi"`` or ``"wsgi"``; detected per app when ``None``.
        tenant_id: names the tenant of a request when no `CloudServer` did.
        include_usage: ask streamed completions for their usage (and hide the
            extra chunk from clients that did not ask for it).
        clock: the time source of usage events.

    .. versionadded:: 0.1.0
    """

    def wrap(app: Any) -> Any:
        if _interface(app, interface) == "asgi":
            return BillingMiddleware(
                app,
                recorder,
                tenant_id=tenant_id,
                include_usage=include_usage,
                clock=clock,
            )
        return WSGIBillingMiddleware(
            app,
            recorder,
            tenant_id=tenant_id,
            include_usage=include_usage,
            clock=clock,
        )

    return wrap
