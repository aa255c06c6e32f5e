"""
``zerfoo-cloud serve``: run an app or an upstream as a multi-tenant service.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import attrs

from zerfoo_cloud._access_log import log_config, redact_text
from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud._metrics_endpoint import MetricsPortServer, metrics_token
from zerfoo_cloud._pool_options import PoolOptions
from zerfoo_cloud._serve_runtime import (
    LOOP_CHOICES,
    PARSER_CHOICES,
    resolve_loop,
    resolve_parser,
)
from zerfoo_cloud._upstream_options import UpstreamOptions
from zerfoo_cloud.alerts import load_secrets
from zerfoo_cloud.cli._context import DB_ENV, _Context, _handle_errors
from zerfoo_cloud.cli._durations import parse_duration
from zerfoo_cloud.serve import CONFIG_ENV, ServeConfig, load_app
from zerfoo_cloud.stores.open import lmdb_folder, open_stores

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


def _import_features(
    *, upstream: bool, saml: bool, metrics: bool, oidc: bool = False
) -> None:
    """
    Import the modules of the features asked for, so a missing extra stops
    ``serve`` here, in one line, not in every worker process.
    """
    modules = {
        "zerfoo_cloud.http.proxy": upstream,
        "zerfoo_cloud.sso.provider": saml,
        "zerfoo_cloud.sso.oidc": oidc,
        "zerfoo_cloud.metrics": metrics,
        # Every server mounts the admin API (the web extra, which needs
        # anyio too: a missing proxy extra is named first).
        "zerfoo_cloud.http.admin": True,
    }
    for module, used in modules.items():
        if used:
            importlib.import_module(module)


def _absolute_counters(counters: str | None) -> str | None:
    """
    *counters*, with an LMDB folder made absolute (every worker opens the
    same one, wherever it runs).
    """
    if counters is None:
        return None
    folder = lmdb_folder(counters, counters=True)
    return counters if folder is None else str(folder.resolve())


def _positive_duration(text: str, option: str) -> float:
    seconds = parse_duration(text, option)
    if not seconds:
        msg = f"{option} must be longer than 0"
        raise click.BadParameter(msg, param_hint=option)
    return seconds


def _saml_pairs(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        tenant_id, sep, path = value.partition("=")
        if not sep or not tenant_id or not path:
            msg = f"--saml-metadata takes TENANT=FILE, not {value!r}"
            raise click.UsageError(msg)
        if not Path(path).is_file():
            msg = f"--saml-metadata: no file {path!r} for tenant {tenant_id!r}"
            raise click.UsageError(msg)
        pairs[tenant_id] = path
    return pairs


def _oidc_file(path: str | None, public_url: str | None) -> str | None:
    """
    The ``--oidc`` file, checked here (in one line, not in every worker
    process) and made absolute.
    """
    if path is None:
        return None
    from zerfoo_cloud.sso.oidc import read_oidc_file

    if not public_url:
        msg = "--oidc needs --public-url (the address providers redirect back to)"
        raise click.UsageError(msg)
    read_oidc_file(path, public_url=public_url, env=os.environ)
    return str(Path(path).resolve())


#: The ``--upstream-*`` options: the `UpstreamOptions` field each sets, and its help.
_UPSTREAM_HELP = {
    "connect_timeout": "Seconds to open a connection to the upstream.",
    "read_timeout": "Seconds to wait for the upstream's answer, or its next streamed chunk.",
    "write_timeout": "Seconds to send each chunk of a streamed request body upstream.",
    "pool_timeout": "Seconds a request waits for a free upstream connection before 503.",
    "max_connections": "Requests in flight to the upstream at most (per worker).",
    "keepalive_timeout": "Seconds an idle upstream connection is kept for reuse.",
    "eject_after": "Connect failures in a row that eject a replica of a pool.",
    "eject_cooldown": "Seconds an ejected replica gets no request before it is probed.",
    "probe_interval": "Seconds between probes of ejected replicas.",
    "probe_timeout": "Seconds a probe or a read of a replica's /v1/models may take.",
    "discovery_interval": "Seconds between reads of each replica's /v1/models.",
}


def _upstream_options(command: Any) -> Any:
    """
    Add an ``--upstream-*`` option for each field of `UpstreamOptions` and
    `PoolOptions`.
    """
    defaults = {**attrs.asdict(UpstreamOptions()), **attrs.asdict(PoolOptions())}
    for field, text in reversed(_UPSTREAM_HELP.items()):
        default = defaults[field]
        kind = (
            click.IntRange(1)
            if isinstance(default, int)
            else click.FloatRange(0, min_open=True)
        )
        command = click.option(
            "--upstream-" + field.replace("_", "-"),
            type=kind,
            default=default,
            show_default=True,
            help=text,
        )(command)
    return command


@click.command()
@click.argument("app", required=False, metavar="[MODULE:APP]")
@click.option(
    "--upstream",
    multiple=True,
    metavar="URL|MODEL=URL",
    help="Proxy to this OpenAI-compatible server instead of an app; repeat for a "
    "pool routed by model (URL: its models are read from its /v1/models).",
)
@_upstream_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option(
    "--durable/--no-durable",
    default=True,
    show_default=True,
    help="Send each response's last byte only once its billing record and audit"
    " entry are on disk; --no-durable answers sooner and may lose the last few"
    " milliseconds of records in a crash.",
)
@click.option(
    "--counters-fail-open",
    is_flag=True,
    help="While the counters store (Redis) cannot be reached, admit on this "
    "host's own counters (each switch audited) instead of answering 503; "
    "a fleet of N hosts then admits up to N times each limit.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(0),
    default=32 * 1024 * 1024,
    show_default=True,
    help="Larger request bodies get 413 (0: no limit).",
)
@click.option(
    "--metrics/--no-metrics",
    default=True,
    show_default=True,
    help="Count metrics and serve them on --metrics-port, or on the serving "
    "port's /metrics to holders of ZERFOO_CLOUD_METRICS_TOKEN (else nowhere).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics on this port of --metrics-host, not the serving port.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="The address --metrics-port is bound to.",
)
@click.option(
    "--metrics-tenant-labels",
    is_flag=True,
    help="Label metrics with tenant ids (off: no tenant id in any metric).",
)
@click.option(
    "--max-header-bytes",
    type=click.IntRange(1),
    default=64 * 1024,
    show_default=True,
    help="A longer request head (request line and headers) gets 431.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    help="Seconds a client has to send a whole request head; "
    "slower connections are closed (0: no limit).",
)
@click.option(
    "--saml-metadata",
    "saml",
    multiple=True,
    metavar="TENANT=FILE",
    help="IdP metadata for a tenant's admin login (repeat).",
)
@click.option(
    "--oidc",
    metavar="FILE",
    help="OpenID providers for console login (JSON or TOML: one per tenant, "
    "and one for the operators); see docs/sso.md.",
)
@click.option(
    "--public-url",
    metavar="URL",
    help="This service's external URL (needed for SAML and OpenID Connect).",
)
@click.option(
    "--prices",
    metavar="FILE",
    help="Price every billing record with this price file (JSON or TOML); "
    "models it cannot price are refused with 403.",
)
@click.option(
    "--webhook-url",
    "webhook_urls",
    multiple=True,
    metavar="URL|TYPES=URL",
    help="POST signed alerts (budget thresholds, key changes and expiry) to "
    "this URL; repeat for several. TYPES=URL sends only those event types "
    "(budget.*,key.revoked). The secret comes from ZERFOO_CLOUD_WEBHOOK_SECRET "
    "or --webhook-secret-file.",
)
@click.option(
    "--webhook-events",
    default="",
    metavar="TYPES",
    help="The event types sent to each --webhook-url without its own, "
    "comma-separated patterns such as budget.*,key.* (default: all).",
)
@click.option(
    "--webhook-secret-file",
    metavar="FILE",
    help="Read the webhook signing secret(s) from this file, not from "
    "ZERFOO_CLOUD_WEBHOOK_SECRET.",
)
@click.option(
    "--key-expiry-window",
    default="7d",
    show_default=True,
    metavar="DURATION",
    help="Announce keys that expire within this time (key.expiring alerts).",
)
@click.option(
    "--loop",
    type=click.Choice(LOOP_CHOICES),
    default="auto",
    show_default=True,
    help="The event loop (auto: uvloop when installed, else asyncio).",
)
@click.option(
    "--http",
    "http_parser",
    type=click.Choice(PARSER_CHOICES),
    default="auto",
    show_default=True,
    help="The HTTP parser (auto: httptools when installed, else h11).",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@click.pass_obj
@_handle_errors
def serve(
    obj: _Context,
    /,
    app: str | None,
    upstream: tuple[str, ...],
    host: str,
    port: int,
    workers: int,
    durable: bool,
    counters_fail_open: bool,
    max_body_bytes: int,
    metrics: bool,
    metrics_port: int | None,
    metrics_host: str,
    metrics_tenant_labels: bool,
    max_header_bytes: int,
    header_timeout: float,
    saml: tuple[str, ...],
    oidc: str | None,
    public_url: str | None,
    prices: str | None,
    webhook_urls: tuple[str, ...],
    webhook_events: str,
    webhook_secret_file: str | None,
    key_expiry_window: str,
    loop: str,
    http_parser: str,
    log_level: str,
    **upstream_options: Any,
) -> None:
    """
    Serve MODULE:APP (an ASGI or WSGI app) or --upstream URL as a multi-tenant service.

    Secrets come from the environment, never from flags: ZERFOO_CLOUD_ADMIN_KEY
    (or ZERFOO_CLOUD_ADMIN_KEY_HASH) for /admin, ZERFOO_CLOUD_UPSTREAM_KEY for
    the upstream, ZERFOO_CLOUD_SESSION_SECRET for SSO sessions (SAML and
    OpenID Connect), the variables an --oidc file names for client secrets,
    ZERFOO_CLOUD_AUDIT_SECRET for the audit chain, ZERFOO_CLOUD_METRICS_TOKEN
    for /metrics, ZERFOO_CLOUD_WEBHOOK_SECRET for --webhook-url.

    /healthz answers while the process lives; /readyz answers 200 only while
    the store (and the upstream) can serve. No log line carries a key: query
    values and key-like path segments are logged as [redacted].
    """
    with needs_extra("server", "zerfoo-cloud serve"):
        import uvicorn
    if not obj.db:
        msg = f"no store given: pass --db PATH|URL or set {DB_ENV}"
        raise click.UsageError(msg)
    records_folder = lmdb_folder(obj.db)
    for spec in upstream:
        if "=" not in spec and not spec.startswith(("http://", "https://")):
            msg = f"--upstream must be an http:// or https:// URL, not {spec!r}"
            raise click.UsageError(msg)
    # Fail here, in one line, if the loop or parser named is not installed.
    event_loop = resolve_loop(loop)
    parser = resolve_parser(http_parser)
    token = metrics_token()
    exposed = metrics and (metrics_port is not None or token is not None)
    _import_features(
        upstream=bool(upstream), saml=bool(saml), metrics=exposed, oidc=bool(oidc)
    )
    oidc = _oidc_file(oidc, public_url)
    # One bare URL is proxied as it is; several, or a model map, make a pool.
    single = len(upstream) == 1 and upstream[0].startswith(("http://", "https://"))
    config = ServeConfig(
        db=obj.db if records_folder is None else str(records_folder.resolve()),
        counters=_absolute_counters(obj.counters),
        app=app,
        upstream=upstream[0] if single else None,
        upstreams=() if single else upstream,
        durable=durable,
        counters_fail_open=counters_fail_open,
        max_body_bytes=max_body_bytes,
        metrics=exposed,
        saml=_saml_pairs(saml),
        oidc=oidc,
        public_url=public_url,
        max_header_bytes=max_header_bytes,
        header_timeout=header_timeout,
        metrics_port=metrics_port if exposed else None,
        metrics_host=metrics_host,
        metrics_tenant_labels=metrics_tenant_labels,
        http_parser=http_parser,
        prices=None if prices is None else str(Path(prices).resolve()),
        webhook_urls=webhook_urls,
        webhook_events=webhook_events,
        webhook_secret_file=None
        if webhook_secret_file is None
        else str(Path(webhook_secret_file).resolve()),
        key_expiry_window=_positive_duration(key_expiry_window, "--key-expiry-window"),
        **upstream_options,
    )
    if webhook_urls:
        # Fail here, in one line, without a secret (never shown).
        load_secrets(os.environ, config.webhook_secret_file)
    if app is not None:
        sys.path.insert(0, str(Path.cwd()))
        load_app(app)  # fail here, with a clear message, not in every worker
    os.environ[CONFIG_ENV] = config.to_env()
    multiprocess = workers > 1 or config.metrics_port is not None
    if exposed and multiprocess and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
            prefix="zerfoo-metrics-"
        )
    # Fail here, in one line, if a store cannot be opened or read.
    with open_stores(config.db, config.counters) as stores:
        stores.check_records()
        stores.check_counters()
        shown = f"store {stores.records_url}, counters {stores.counters_url}"
    click.echo(
        redact_text(
            f"serving {app or ' '.join(upstream)} on http://{host}:{port} with {workers} "
            f"worker(s) on {event_loop} and {parser}; {shown}"
        ),
        err=True,
    )
    metrics_server = None
    if config.metrics_port is not None:
        from zerfoo_cloud.metrics import CONTENT_TYPE, render_multiprocess

        folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        metrics_server = MetricsPortServer(
            metrics_host,
            config.metrics_port,
            lambda: render_multiprocess(folder),
            CONTENT_TYPE,
            token,
        )
        metrics_server.start()
        click.echo(
            f"metrics on http://{metrics_host}:{metrics_server.port}/metrics", err=True
        )
    elif metrics and not exposed:
        click.echo(
            "metrics are off: pass --metrics-port or set ZERFOO_CLOUD_METRICS_TOKEN",
            err=True,
        )
    try:
        uvicorn.run(
            "zerfoo_cloud.serve:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            log_config=log_config(),
            lifespan="on",
            loop=event_loop,
            http="zerfoo_cloud._serve_protocol:ServeProtocol",
            h11_max_incomplete_event_size=max_header_bytes,
        )
    finally:
        if metrics_server is not None:
            metrics_server.close()
