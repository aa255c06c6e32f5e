"""
The service ``zerfoo-cloud serve`` runs: a CloudServer on its stores (records
and counters, see `zerfoo_cloud.stores.open`).

`ServeConfig` says what to serve; `build_app` turns it into one ASGI app
(the inference app or an `UpstreamProxy`, wrapped by `CloudServer`, with the
admin API, SAML login and ``/metrics``). uvicorn starts one per worker
process through `create_app`, which reads the configuration from the
environment (`ServeConfig.to_env` writes it there), so every worker builds
the same service on the same store.

On shutdown (ASGI lifespan, and at interpreter exit) every queued billing
record and audit entry is flushed before the store is closed.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud._http_limits import DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_HEADER_BYTES
from zerfoo_cloud._metrics_endpoint import metrics_endpoint, metrics_token
from zerfoo_cloud._pool_options import PoolOptions
from zerfoo_cloud._serve_alerts import ServedAlerts, webhook_endpoints
from zerfoo_cloud._serve_runtime import PARSER_CHOICES, tune_gc
from zerfoo_cloud._upstream_options import UpstreamOptions
from zerfoo_cloud.alerts import (
    DEFAULT_EXPIRY_WINDOW,
    DEFAULT_SCAN_INTERVAL,
    display_url,
)
from zerfoo_cloud.audit import AuditLogger
from zerfoo_cloud.audit_records.actions import AuditAction, AuditResult
from zerfoo_cloud.audit_records.entry import AuditEntry
from zerfoo_cloud.budgets.event_log import log_budget_event
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http._model_routes import parse_upstreams
from zerfoo_cloud.http._server import CloudServer, detect_interface
from zerfoo_cloud.metering import TokenMeter
from zerfoo_cloud.price_book import PriceBook
from zerfoo_cloud.price_reloader import PriceReloader
from zerfoo_cloud.pricing import PriceTable
from zerfoo_cloud.stores.failover import failover_limits
from zerfoo_cloud.stores.open import COUNTERS_ENV, OUTBOX_ENV, open_stores, redact_url
from zerfoo_cloud.tenants import TenantManager, hash_api_key

if TYPE_CHECKING:
    from zerfoo_cloud.http._types import Receive, Scope, Send

__all__ = [
    "ADMIN_KEY_ENV",
    "CONFIG_ENV",
    "CONSOLE_SESSION_IDLE",
    "CONSOLE_SESSION_TTL",
    "SESSION_SECRET_ENV",
    "UPSTREAM_KEY_ENV",
    "ServeConfig",
    "build_app",
    "create_app",
    "load_app",
]

#: The environment variable that carries the serialized `ServeConfig`.
CONFIG_ENV = "ZERFOO_CLOUD_SERVE_CONFIG"
#: The raw admin key (hashed at start, never stored) ...
ADMIN_KEY_ENV = "ZERFOO_CLOUD_ADMIN_KEY"
#: ... or its SHA-256 hash(es), comma-separated.
ADMIN_KEY_HASH_ENV = "ZERFOO_CLOUD_ADMIN_KEY_HASH"
#: The key sent to the upstream server, if it wants one.
UPSTREAM_KEY_ENV = "ZERFOO_CLOUD_UPSTREAM_KEY"
#: The secret that signs tenant-admin sessions (at least 32 bytes).
SESSION_SECRET_ENV = "ZERFOO_CLOUD_SESSION_SECRET"  # noqa: S105 - a variable name
#: Console and SAML sessions end this many seconds after sign-in (12 hours)...
CONSOLE_SESSION_TTL = 12 * 3600
#: ...or after this many seconds without a request (30 minutes).
CONSOLE_SESSION_IDLE = 30 * 60
#: The audit chain's HMAC secret, if any.
AUDIT_SECRET_ENV = "ZERFOO_CLOUD_AUDIT_SECRET"  # noqa: S105 - a variable name


def _str_dict(pairs: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in pairs.items()}


_Options = TypeVar("_Options", UpstreamOptions, PoolOptions)


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        return (values,)
    return tuple(str(v) for v in values)


#: The connection pool options ``serve`` uses unless told otherwise.
_UPSTREAM_DEFAULTS = UpstreamOptions()
#: The replica pool options ``serve`` uses unless told otherwise.
_POOL_DEFAULTS = PoolOptions()


@attrs.frozen
class ServeConfig:
    """
    What `build_app` serves.

    Attributes:
        db: the records store: an LMDB folder or a URL (see
            `zerfoo_cloud.stores.open.open_stores`).
        prices: a price file (JSON or TOML): every billing record is priced
            with it, and a model it cannot price is refused; the stored
            price table is then neither used nor changeable (the admin API
            answers 409). ``None``: the table stored in the records store
            (``zerfoo-cloud prices set``, ``PUT /admin/prices``), reloaded
            within a second of each change; no costs while none is stored.
        counters: the counters store URL, or ``None``: `COUNTERS_ENV`
            (``ZERFOO_CLOUD_COUNTERS``) of the serving process, else the
            records store.
        app: the inference app as ``module:attribute`` (ASGI or WSGI), or
            ``None`` with *upstream*.
        upstream: the base URL of a remote OpenAI-compatible server.
        upstreams: the replicas of a pool routed by model (``URL`` or
            ``MODEL=URL`` each, see `zerfoo_cloud.http.pooled_proxy`),
            instead of one *upstream*.
        durable: send each response's last byte only once its billing record
            and audit entry are durable (``False``: do not wait, and lose
            the last few milliseconds of records in a crash).
        max_body_bytes: larger request bodies get 413.
        metrics: serve ``/metrics``.
        saml: tenant id to IdP metadata file, for tenant-admin SAML login.
        oidc: an ``--oidc`` file (JSON or TOML) of OpenID providers, one per
            tenant and one for the operators
            (`zerfoo_cloud.sso.oidc.read_oidc_file`).
        public_url: this service's external base URL (the SAML SP entity id
            and ACS URLs are derived from it; the console's cookies are
            ``Secure`` unless it is plain ``http://`` on 127.0.0.1 or
            localhost).
        max_header_bytes: a longer request head (request line and headers)
            gets 431.
        header_timeout: seconds a client has to send a whole request head
            (0: no limit).
        metrics_port: serve ``/metrics`` on this port of *metrics_host*
            (in the ``serve`` process) instead of the serving port.
        metrics_host: the address the metrics port is bound to.
        metrics_tenant_labels: label metrics with tenant ids.
        counters_fail_open: while the counters store (Redis) cannot be
            reached, admit on this process's own counters
            (`zerfoo_cloud.stores.failover.failover_limits`; each switch
            is written to the audit log) instead of answering 503.
        http_parser: uvicorn's HTTP parser, ``h11`` or ``httptools``
            (``auto``: httptools when installed).
        upstream_connect_timeout, upstream_read_timeout,
        upstream_write_timeout, upstream_pool_timeout,
        upstream_max_connections, upstream_keepalive_timeout: the
            `UpstreamOptions` of the connection pool to *upstream* (or to
            each of *upstreams*).
        upstream_eject_after, upstream_eject_cooldown,
        upstream_probe_interval, upstream_probe_timeout,
        upstream_discovery_interval: the `PoolOptions` of *upstreams*.
        webhook_urls: where alerts are POSTed, ``URL`` or ``PATTERNS=URL``
            (see `zerfoo_cloud._serve_alerts.webhook_endpoints`); none: no
            alerts. The signing secret comes from ``ZERFOO_CLOUD_WEBHOOK_SECRET``
            or *webhook_secret_file*.
        webhook_events: the event types of the URLs without their own
            patterns (``budget.*,key.*``; empty: all).
        webhook_secret_file: a file of webhook secrets (instead of the
            environment).
        key_expiry_window: keys expiring within this many seconds are
            announced (``key.expiring``).
        key_expiry_interval: seconds between key expiry scans.

    .. versionadded:: 0.1.0
    """

    db: str = attrs.field(repr=redact_url)
    app: str | None = None
    upstream: str | None = None
    upstreams: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    durable: bool = True
    max_body_bytes: int = 32 * 1024 * 1024
    metrics: bool = True
    saml: Mapping[str, str] = attrs.field(factory=dict, converter=_str_dict)
    public_url: str | None = None
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics_tenant_labels: bool = False
    http_parser: str = "auto"
    upstream_connect_timeout: float = _UPSTREAM_DEFAULTS.connect_timeout
    upstream_read_timeout: float = _UPSTREAM_DEFAULTS.read_timeout
    upstream_write_timeout: float = _UPSTREAM_DEFAULTS.write_timeout
    upstream_pool_timeout: float = _UPSTREAM_DEFAULTS.pool_timeout
    upstream_max_connections: int = _UPSTREAM_DEFAULTS.max_connections
    upstream_keepalive_timeout: float = _UPSTREAM_DEFAULTS.keepalive_timeout
    upstream_eject_after: int = _POOL_DEFAULTS.eject_after
    upstream_eject_cooldown: float = _POOL_DEFAULTS.eject_cooldown
    upstream_probe_interval: float = _POOL_DEFAULTS.probe_interval
    upstream_probe_timeout: float = _POOL_DEFAULTS.probe_timeout
    upstream_discovery_interval: float = _POOL_DEFAULTS.discovery_interval
    counters: str | None = attrs.field(
        default=None, repr=lambda url: "None" if url is None else redact_url(url)
    )
    prices: str | None = None
    counters_fail_open: bool = False
    webhook_urls: tuple[str, ...] = attrs.field(
        default=(),
        converter=_str_tuple,
        repr=lambda urls: repr(tuple(display_url(u.rpartition("=")[2]) for u in urls)),
    )
    webhook_events: str = ""
    webhook_secret_file: str | None = None
    key_expiry_window: float = DEFAULT_EXPIRY_WINDOW
    key_expiry_interval: float = DEFAULT_SCAN_INTERVAL
    oidc: str | None = None

    def __attrs_post_init__(self) -> None:
        served = (self.app, self.upstream, self.upstreams or None)
        if sum(part is not None for part in served) != 1:
            msg = "serve either an app (module:attribute) or an --upstream URL, not both or neither"
            raise InvalidConfigError(msg, field="app")
        if self.saml and not self.public_url:
            msg = "SAML login needs --public-url (the address IdPs post back to)"
            raise InvalidConfigError(msg, field="public_url")
        if self.oidc and not self.public_url:
            msg = "OpenID Connect login needs --public-url (the address providers redirect back to)"
            raise InvalidConfigError(msg, field="public_url")
        if self.max_header_bytes < 1:
            msg = f"max_header_bytes must be at least 1, not {self.max_header_bytes}"
            raise InvalidConfigError(msg, field="max_header_bytes")
        if self.http_parser not in PARSER_CHOICES:
            msg = f"http_parser must be one of {', '.join(PARSER_CHOICES)}, not {self.http_parser!r}"
            raise InvalidConfigError(msg, field="http_parser")
        if not self.header_timeout >= 0:
            msg = f"header_timeout must be zero or more, not {self.header_timeout}"
            raise InvalidConfigError(msg, field="header_timeout")
        self.upstream_options()
        self.pool_options()
        if self.upstreams:
            parse_upstreams(self.upstreams)
        self.price_table()
        webhook_endpoints(self.webhook_urls, self.webhook_events)

    def price_table(self) -> PriceTable | None:
        """
        The price table of *prices*, or ``None`` without one.

        Raises:
            InvalidConfigError: the file is missing or holds no valid
                table (one line, starting with its path).
        """
        return None if self.prices is None else PriceTable.from_file(self.prices)

    def upstream_options(self) -> UpstreamOptions:
        """
        The timeouts and pool size of the connection pool to the upstream.

        Raises:
            InvalidConfigError: one of them is out of range.
        """
        return self._prefixed(UpstreamOptions)

    def pool_options(self) -> PoolOptions:
        """
        The ejection, probing and discovery settings of the replica pool.

        Raises:
            InvalidConfigError: one of them is out of range.
        """
        return self._prefixed(PoolOptions)

    def _prefixed(self, kind: type[_Options]) -> _Options:
        """A *kind* made of this configuration's ``upstream_*`` fields."""
        fields = attrs.fields_dict(kind)
        return kind(**{name: getattr(self, "upstream_" + name) for name in fields})

    def to_env(self) -> str:
        """
        Serialize for `CONFIG_ENV`.
        """
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeConfig:
        """
        Read the configuration `to_env` wrote.

        Raises:
            InvalidConfigError: it is missing or malformed.
        """
        raw = (os.environ if environ is None else environ).get(CONFIG_ENV)
        if not raw:
            msg = (
                f"{CONFIG_ENV} is not set: start the service with 'zerfoo-cloud serve'"
            )
            raise InvalidConfigError(msg)
        try:
            return cls(**json.loads(raw))
        except (TypeError, ValueError) as exc:
            msg = f"{CONFIG_ENV} is malformed: {exc}"
            raise InvalidConfigError(msg) from exc


def load_app(spec: str) -> Any:
    """
    Import ``module:attribute`` (``attribute`` may be dotted) and return it.

    Raises:
        InvalidConfigError: the module or attribute cannot be found.

    .. versionadded:: 0.1.0
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        msg = f"the app must be given as module:attribute, not {spec!r}"
        raise InvalidConfigError(msg, field="app")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"cannot import module {module_name!r}: {exc}"
        raise InvalidConfigError(msg, field="app") from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:  # noqa: PERF203 - runs once at start
            msg = f"module {module_name!r} has no attribute {attr!r}"
            raise InvalidConfigError(msg, field="app") from None
    return target


def _admin_hashes(environ: Mapping[str, str]) -> list[str]:
    hashes = [
        h.strip() for h in environ.get(ADMIN_KEY_HASH_ENV, "").split(",") if h.strip()
    ]
    raw = environ.get(ADMIN_KEY_ENV)
    if raw:
        hashes.append(hash_api_key(raw))
    return hashes


class _Service:
    """
    The served ASGI app: answers the serve layer's own paths (``/readyz``,
    ``/metrics``), runs the inner app's lifespan, then closes our parts.
    """

    def __init__(
        self, handler: Any, closers: list[Any], routes: Mapping[str, Any]
    ) -> None:
        self.handler = handler
        self.closers = closers
        self.routes = dict(routes)
        self.closed = False

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for close in self.closers:
            result = close()
            if hasattr(result, "__await__"):
                await result

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
            await (route or self.handler)(scope, receive, send)
            return

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.close()
            await send(message)

        await self.handler(scope, receive, send_wrapper)


def build_app(config: ServeConfig, environ: Mapping[str, str] | None = None) -> Any:
    """
    Build the service of *config*: one ASGI app.

    Secrets come from *environ* (default: the process environment): the admin
    key (`ADMIN_KEY_ENV` or `ADMIN_KEY_HASH_ENV`), the upstream key
    (`UPSTREAM_KEY_ENV`), the session secret (`SESSION_SECRET_ENV`) and the
    audit secret (`AUDIT_SECRET_ENV`); so do the counters store URL
    (`COUNTERS_ENV`) when *config* names none, and the local outbox folder
    of PostgreSQL records (`OUTBOX_ENV`).

    Raises:
        InvalidConfigError: the app cannot be loaded, or an option is bad.
        StoreError: the store cannot be opened.

    .. versionadded:: 0.1.0
    """
    env = os.environ if environ is None else environ
    closers: list[Any] = []
    metrics = None
    if config.metrics:
        from zerfoo_cloud.metrics import Metrics

        metrics = Metrics(tenant_labels=config.metrics_tenant_labels)
    proxy = _proxy(config, env.get(UPSTREAM_KEY_ENV) or None, metrics)
    if proxy is not None:
        app: Any = proxy
        closers.append(proxy.aclose)
    else:
        app = _served_app(config)
    # Billing and audit committed from one writer process, off the serving
    # threads (with LMDB records).
    stores = open_stores(
        config.db,
        config.counters or env.get(COUNTERS_ENV) or None,
        writer_process=True,
        outbox=env.get(OUTBOX_ENV) or None,
    )
    fixed = config.price_table()
    stored = stores.prices.read() if fixed is None else None
    meter = TokenMeter(stores.billing, prices=fixed if stored is None else stored.table)
    audit = AuditLogger(stores.audit, secret=env.get(AUDIT_SECRET_ENV) or None)
    limits = stores.limits
    if config.counters_fail_open:
        limits = failover_limits(limits, on_failover=_audit_failover(audit))
    tenants = TenantManager(
        stores.tenants, limits=limits, revocations=stores.revocations, audit=audit
    )
    alerts = _alerts(config, env, audit, tenants)
    if metrics is not None:
        _track_queues(metrics, stores, alerts)
    prices = PriceBook(stores.prices, fixed=fixed)
    admin = _admin_api(
        config, env, stores, tenants=tenants, meter=meter, audit=audit, prices=prices
    )
    server = CloudServer(
        app,
        tenants,
        meter,
        audit=audit,
        interface="asgi",
        durable=config.durable,
        max_body_bytes=config.max_body_bytes,
        admin=admin,
        metrics=metrics,
        budget_events=_budget_events(alerts),
    )
    reloader = None
    if stored is not None:
        # Prices from the store: every change, made on any host, reaches
        # this one's meter and policy within a second.
        reloader = PriceReloader(
            stores.prices, [meter, server.policy], version=stored.version
        )
        reloader.start()

    def close_all() -> None:
        if reloader is not None:
            reloader.close()
        server.close()
        if alerts is not None:
            alerts.close()
        tenants.close()
        meter.close()
        audit.close()
        stores.close()

    closers.append(close_all)
    return _Service(
        server.handler(),
        closers,
        _routes(config, env, stores, proxy, metrics),
    )


def _served_app(config: ServeConfig) -> Any:
    # The app named by --app, as ASGI (a WSGI app wrapped by a2wsgi).
    assert config.app is not None
    app = load_app(config.app)
    if detect_interface(app) == "wsgi":
        with needs_extra("server", "serving a WSGI app"):
            from a2wsgi import WSGIMiddleware

        app = WSGIMiddleware(app)
    return app


def _track_queues(metrics: Any, stores: Any, alerts: ServedAlerts | None) -> None:
    # /metrics gauges of the local outbox (PostgreSQL records) and the alerts.
    if stores.outbox is not None:
        from zerfoo_cloud.metrics import OutboxMetrics

        OutboxMetrics(metrics.registry).track(stores.outbox)
    if alerts is not None:
        from zerfoo_cloud.metrics import AlertMetrics

        alerts.alerts.watch(AlertMetrics(metrics.registry))


def _alerts(
    config: ServeConfig,
    env: Mapping[str, str],
    audit: AuditLogger,
    tenants: TenantManager,
) -> ServedAlerts | None:
    """
    The running alerts of *config* (``None`` without ``--webhook-url``);
    *tenants* tells them of key changes.
    """
    if not config.webhook_urls:
        return None
    served = ServedAlerts(
        webhook_endpoints(config.webhook_urls, config.webhook_events),
        records=config.db,
        env=env,
        secret_file=config.webhook_secret_file,
        audit=audit,
        tenant_records=tenants.records,
        window=config.key_expiry_window,
        interval=config.key_expiry_interval,
    )
    tenants.key_events = served.alerts.key_event
    served.start()
    return served


def _budget_events(alerts: ServedAlerts | None) -> Any:
    """
    What ``serve`` does with budget events: log each, and with webhooks,
    emit its alert (`zerfoo_cloud.alerts.Alerts.budget_event`, which never
    blocks the event loop).
    """
    if alerts is None:
        return log_budget_event
    emit = alerts.alerts.budget_event

    def both(event: Any) -> None:
        log_budget_event(event)
        emit(event)

    return both


def _audit_failover(audit: AuditLogger) -> Any:
    """
    The ``on_failover`` of ``--counters-fail-open``: one audit entry per
    switch, with no tenant id: resource ``counters:this-host`` and result
    ``error`` when limits go to this host's own counters,
    ``counters:shared`` and ``success`` when they are shared again.
    """

    def switched(to: str, error: Exception | None) -> None:
        failed = to == "fallback"
        audit.log(
            AuditEntry(
                None,
                "",
                AuditAction.UPDATE,
                AuditResult.ERROR if failed else AuditResult.SUCCESS,
                resource="counters:" + ("this-host" if failed else "shared"),
                status_code=503 if failed else 200,
            )
        )
        del error  # logged by the store; its text may name hosts

    return switched


def _proxy(config: ServeConfig, upstream_key: str | None, metrics: Any) -> Any:
    """The upstream proxy of *config* (one upstream or a pool), or ``None``."""
    if config.upstream is not None:
        from zerfoo_cloud.http.proxy import UpstreamProxy

        return UpstreamProxy(
            config.upstream,
            api_key=upstream_key,
            **attrs.asdict(config.upstream_options()),
        )
    if config.upstreams:
        from zerfoo_cloud._upstream_metrics import UpstreamMetrics
        from zerfoo_cloud.http.pooled_proxy import PooledProxy

        return PooledProxy(
            config.upstreams,
            api_key=upstream_key,
            observer=None if metrics is None else UpstreamMetrics(metrics.registry),
            **attrs.asdict(config.upstream_options()),
            **attrs.asdict(config.pool_options()),
        )
    return None


def _admin_api(
    config: ServeConfig,
    env: Mapping[str, str],
    stores: Any,
    *,
    tenants: TenantManager,
    meter: TokenMeter,
    audit: AuditLogger,
    prices: PriceBook,
) -> Any:
    """
    The admin API, with SAML login for the tenants of ``--saml``, OpenID
    Connect login for the providers of ``--oidc``, and the web console
    when a session secret is set.
    """
    # The admin API needs the web extra (Starlette); `serve` checks it first.
    from zerfoo_cloud.http.admin import AdminAPI, SessionSigner

    sso: dict[str, Any] = {}
    oidc: list[Any] = []
    sessions = None
    secret = env.get(SESSION_SECRET_ENV, "")
    if config.saml or config.oidc or secret:
        if len(secret.encode()) < 32:  # noqa: PLR2004 - SessionSigner's minimum
            what = "SSO login" if config.saml or config.oidc else "the console"
            msg = f"{what} needs {SESSION_SECRET_ENV} set to at least 32 bytes"
            raise InvalidConfigError(msg, field="session_secret")
        sessions = SessionSigner(
            secret.encode(), ttl=CONSOLE_SESSION_TTL, idle=CONSOLE_SESSION_IDLE
        )
    base = (config.public_url or "").rstrip("/")
    if config.saml:
        from zerfoo_cloud.sso import SAMLProvider, parse_saml_metadata

        for tenant_id, path in config.saml.items():
            metadata = parse_saml_metadata(Path(path).read_bytes())
            sso[tenant_id] = SAMLProvider(
                metadata,
                tenant_id,
                sp_entity_id=f"{base}/sso/saml/{tenant_id}/metadata",
                acs_url=f"{base}/sso/saml/{tenant_id}/acs",
                replay_cache=stores.replay,
            )
    if config.oidc:
        from zerfoo_cloud.sso.oidc import OIDCProvider, read_oidc_file

        oidc = [
            OIDCProvider(provider)
            for provider in read_oidc_file(config.oidc, public_url=base, env=env)
        ]
    api = AdminAPI(
        tenants,
        meter=meter,
        audit=audit,
        admin_key_hashes=_admin_hashes(env),
        sessions=sessions,
        sso=sso or None,
        prices=prices,
        oidc=oidc,
    )
    if sessions is not None:
        from zerfoo_cloud.http.console import mount_console

        mount_console(api, secure_cookies=not _loopback_http(config.public_url))
    return api


def _loopback_http(url: str | None) -> bool:
    """
    Whether *url* is plain HTTP on this machine: the only place the
    console's cookies go without ``Secure``.
    """
    return bool(url) and str(url).startswith(
        (
            "http://127.0.0.1:",
            "http://127.0.0.1/",
            "http://localhost:",
            "http://localhost/",
        )
    )


def _routes(
    config: ServeConfig,
    env: Mapping[str, str],
    stores: Any,
    proxy: Any,
    metrics: Any,
) -> dict[str, Any]:
    """
    The paths the serve layer answers before the service: readiness, and
    ``/metrics`` (only with the metrics token; else a 404).
    """
    with needs_extra("server", "zerfoo-cloud serve"):
        import anyio.to_thread

    # The readiness probe needs the server extra (anyio).
    from zerfoo_cloud._readiness import Readiness

    def read_store() -> bool:
        stores.check_records()
        return True

    def read_counters() -> bool:
        stores.check_counters()
        return True

    async def store() -> bool:
        return await anyio.to_thread.run_sync(read_store)

    async def counters() -> bool:
        return await anyio.to_thread.run_sync(read_counters)

    checks: dict[str, Any] = {"store": store, "counters": counters}
    if proxy is not None:
        checks["upstream"] = proxy.health
    token = metrics_token(dict(env))
    if metrics is None:
        endpoint = metrics_endpoint(lambda: b"", "text/plain", None)
    else:
        from zerfoo_cloud.metrics import CONTENT_TYPE

        endpoint = metrics_endpoint(
            metrics.render, CONTENT_TYPE, token if config.metrics_port is None else None
        )
    return {"/readyz": Readiness(checks), "/metrics": endpoint}


def create_app() -> Any:
    """
    The uvicorn factory: `build_app` of `ServeConfig.from_env`, then the
    worker's garbage collector tuned for serving (`tune_gc`).

    .. versionadded:: 0.1.0
    """
    app = build_app(ServeConfig.from_env())
    tune_gc()
    return app
