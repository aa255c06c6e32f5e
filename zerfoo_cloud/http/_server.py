"""
`CloudServer` and `billing_middleware`: the entry points of the HTTP layer.
"""

from __future__ import annotations

import inspect
import time
from typing import TYPE_CHECKING, Any, Literal

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http._accounting import Accounting
from zerfoo_cloud.http._policy import Policy, PolicyOptions
from zerfoo_cloud.http.asgi import BillingMiddleware, CloudMiddleware
from zerfoo_cloud.http.wsgi import WSGIBillingMiddleware, WSGICloudMiddleware

if TYPE_CHECKING:
    from collections.abc import Callable

    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.audit import AuditLogger
    from zerfoo_cloud.http._policy import ResourcePinner
    from zerfoo_cloud.metering import TokenMeter, UsageRecorder
    from zerfoo_cloud.tenants import TenantManager

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


class CloudServer:
    """
    Wraps an inference app (ASGI or WSGI) into a multi-tenant service.

    Args:
        app: an ASGI or WSGI callable (FastAPI, Starlette, Flask, a bare
            function, ...).
        tenants: authenticates keys and enforces the tenants' limits.
        meter: receives one billing record per admitted request.
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
            record is durable.
        health_path: the path answered with the health status, no key needed.
        clock: the time source of usage events.

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
        durable: bool = False,
        health_path: str = "/healthz",
        clock: Clock = time.time,
    ) -> None:
        self.app = app
        self.interface: Interface = _interface(app, interface)
        self.audit = audit
        self.options = PolicyOptions(
            max_body_bytes=max_body_bytes,
            default_estimate=default_estimate,
            default_max_tokens=default_max_tokens,
            include_usage=include_usage,
            durable=durable,
            health_path=health_path,
        )
        self.policy = Policy(tenants, self.options, resources=resources)
        self.accounting = Accounting(meter, audit=audit, recorder=recorder, clock=clock)
        self._handler: CloudMiddleware | WSGICloudMiddleware
        if self.interface == "asgi":
            self._handler = CloudMiddleware(app, self.policy, self.accounting)
        else:
            self._handler = WSGICloudMiddleware(app, self.policy, self.accounting)

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

    def handler(self) -> CloudMiddleware | WSGICloudMiddleware:
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
