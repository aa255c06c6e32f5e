"""
The ``zerfoo-cloud`` command: manage tenants, report usage, audit, serve.

Every command works on an LMDB store folder given by ``--db`` or the
``ZERFOO_CLOUD_DB`` environment variable. It can run while servers use the
same folder: what it changes takes effect at their next request.

Expected failures (a bad flag, a missing store, an unknown tenant) print one
line saying what to do and exit with status 1 (2 for usage errors); they
never print a traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import CloudError
from zerfoo_cloud.serve import AUDIT_SECRET_ENV
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.tenants import TenantConfig, TenantManager, TenantRecord

with needs_extra("cli", "the zerfoo-cloud command"):
    import click

__all__ = [
    "AUDIT_SECRET_ENV",
    "DB_ENV",
    "DEFAULT_RATE_LIMIT",
    "DEFAULT_TOKEN_BUDGET",
    "main",
    "render_table",
]

#: The environment variable naming the store folder when ``--db`` is absent.
DB_ENV = "ZERFOO_CLOUD_DB"

F = TypeVar("F", bound=Callable[..., Any])


class _Context:
    """
    What every command needs: where the store is, and how to print.
    """

    def __init__(self, db: str | None) -> None:
        self.db = db

    @contextmanager
    def stores(self, *, create: bool = False) -> Iterator[LMDBStores]:
        if not self.db:
            msg = f"no store given: pass --db PATH or set {DB_ENV}"
            raise click.UsageError(msg)
        path = Path(self.db)
        if not create and not (path / "data.mdb").exists():
            msg = (
                f"no zerfoo-cloud store at {str(path)!r}: check --db / {DB_ENV}, "
                "or create the first tenant with 'zerfoo-cloud tenant create'"
            )
            raise click.ClickException(msg)
        stores = LMDBStores.open(path)
        try:
            yield stores
        finally:
            stores.close()

    @contextmanager
    def manager(self, *, create: bool = False) -> Iterator[TenantManager]:
        with self.stores(create=create) as stores:
            yield TenantManager(stores.tenants, limits=stores.limits)


def _handle_errors(fn: F) -> F:
    """
    Turn library errors into one-line messages (no traceback).
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CloudError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _record_dict(record: TenantRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "key_id": record.key_id,
        "rate_limit": record.rate_limit,
        "token_budget": record.token_budget,
        "max_concurrent_requests": record.max_concurrent_requests,
        "model_allow_list": list(record.model_allow_list),
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at),
    }


def _limit(value: int) -> str:
    return "unlimited" if value == 0 else f"{value:,}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """
    Render *rows* under *headers* as an aligned plain-text table.
    """
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
    return "\n".join(lines)


def _tenant_rows(records: Sequence[TenantRecord]) -> str:
    return render_table(
        ["ID", "KEY", "REQ/MIN", "TOKENS/MIN", "CONCURRENT", "MODELS"],
        [
            [
                r.id,
                r.key_id + "…",
                _limit(r.rate_limit),
                _limit(r.token_budget),
                _limit(r.max_concurrent_requests),
                ", ".join(r.model_allow_list) or "all",
            ]
            for r in records
        ],
    )


def _emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar=DB_ENV,
    metavar="PATH",
    help=f"The store folder (default: ${DB_ENV}).",
)
@click.version_option(package_name="zerfoo-cloud")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """
    Manage a zerfoo-cloud service: tenants, usage, audit, and the server.
    """
    ctx.obj = _Context(db)


@cli.group()
def tenant() -> None:
    """
    Create, list, show, update, delete and re-key tenants.
    """


#: Requests per minute of a tenant created without --rate-limit.
DEFAULT_RATE_LIMIT = 60
#: Tokens per minute of a tenant created without --token-budget.
DEFAULT_TOKEN_BUDGET = 100_000


def _limits_options(fn: F, *, create: bool = False) -> F:
    """
    The limit options of ``tenant create`` (with their defaults, shown in
    --help) and ``tenant update`` (no defaults: absent means unchanged).
    """
    fn = click.option(
        "--model",
        "models",
        multiple=True,
        metavar="NAME",
        help="A model the tenant may use (repeat; none: all models).",
    )(fn)
    fn = click.option(
        "--max-concurrent",
        type=click.IntRange(min=0),
        help="Requests in flight at once (0: unlimited).",
    )(fn)
    fn = click.option(
        "--token-budget",
        type=click.IntRange(min=0),
        default=DEFAULT_TOKEN_BUDGET if create else None,
        show_default=create,
        help="Tokens per minute (0: unlimited).",
    )(fn)
    return click.option(
        "--rate-limit",
        type=click.IntRange(min=0),
        default=DEFAULT_RATE_LIMIT if create else None,
        show_default=create,
        help="Requests per minute (0: unlimited).",
    )(fn)


def _create_options(fn: F) -> F:
    return _limits_options(fn, create=True)


@tenant.command("create")
@click.argument("tenant_id")
@_create_options
@_json_option
@click.pass_obj
@_handle_errors
def tenant_create(
    obj: _Context,
    tenant_id: str,
    rate_limit: int,
    token_budget: int,
    max_concurrent: int | None,
    models: tuple[str, ...],
    as_json: bool,
) -> None:
    """
    Create tenant TENANT_ID and print its new API key (shown only once).
    """
    from zerfoo_cloud.tenants import generate_api_key

    key = generate_api_key()
    with obj.manager(create=True) as manager:
        created = manager.create(
            TenantConfig(
                tenant_id,
                key,
                rate_limit=rate_limit,
                token_budget=token_budget,
                max_concurrent_requests=max_concurrent or 0,
                model_allow_list=models,
            )
        )
    data = _record_dict(created.record) | {"api_key": key}
    _emit(
        as_json,
        data,
        f"created tenant {tenant_id!r}\n"
        f"API key (shown once; store it now): {key}\n\n"
        + _tenant_rows([created.record]),
    )


@tenant.command("list")
@_json_option
@click.pass_obj
@_handle_errors
def tenant_list(obj: _Context, as_json: bool) -> None:
    """
    List every tenant (keys are never shown, only their fingerprints).
    """
    with obj.manager() as manager:
        records = manager.records()
    _emit(
        as_json,
        [_record_dict(r) for r in records],
        _tenant_rows(records) if records else "no tenants",
    )


@tenant.command("show")
@click.argument("tenant_id")
@_json_option
@click.pass_obj
@_handle_errors
def tenant_show(obj: _Context, tenant_id: str, as_json: bool) -> None:
    """
    Show one tenant's settings and current quotas.
    """
    with obj.manager() as manager:
        t = manager.get(tenant_id)
        requests, tokens, in_flight = t.request_quota(), t.token_quota(), t.in_flight()
    data = _record_dict(t.record) | {
        "requests_remaining": requests.remaining if t.record.rate_limit else None,
        "tokens_remaining": tokens.remaining if t.record.token_budget else None,
        "in_flight": in_flight,
    }
    lines = [f"{k}: {v}" for k, v in data.items()]
    _emit(as_json, data, "\n".join(lines))


@tenant.command("update")
@click.argument("tenant_id")
@_limits_options
@click.option("--all-models", is_flag=True, help="Allow every model (clear the list).")
@_json_option
@click.pass_obj
@_handle_errors
def tenant_update(
    obj: _Context,
    tenant_id: str,
    rate_limit: int | None,
    token_budget: int | None,
    max_concurrent: int | None,
    models: tuple[str, ...],
    all_models: bool,
    as_json: bool,
) -> None:
    """
    Change a tenant's limits or allowed models; other settings stay.
    """
    if models and all_models:
        msg = "give either --model or --all-models, not both"
        raise click.UsageError(msg)
    allow: tuple[str, ...] | None = () if all_models else (models or None)
    if (
        rate_limit is None
        and token_budget is None
        and max_concurrent is None
        and allow is None
    ):
        msg = "nothing to change: give --rate-limit, --token-budget, --max-concurrent, --model or --all-models"
        raise click.UsageError(msg)
    with obj.manager() as manager:
        t = manager.update(
            tenant_id,
            rate_limit=rate_limit,
            token_budget=token_budget,
            max_concurrent_requests=max_concurrent,
            model_allow_list=allow,
        )
    _emit(as_json, _record_dict(t.record), _tenant_rows([t.record]))


@tenant.command("delete")
@click.argument("tenant_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
@_handle_errors
def tenant_delete(obj: _Context, tenant_id: str, yes: bool) -> None:
    """
    Delete a tenant; its key stops working at once. Billing and audit records stay.
    """
    if not yes and not click.confirm(
        f"delete tenant {tenant_id!r}? Its key stops working at once", default=False
    ):
        raise click.Abort
    with obj.manager() as manager:
        manager.delete(tenant_id)
    click.echo(f"deleted tenant {tenant_id!r}")


@tenant.command("rotate-key")
@click.argument("tenant_id")
@_json_option
@click.pass_obj
@_handle_errors
def tenant_rotate_key(obj: _Context, tenant_id: str, as_json: bool) -> None:
    """
    Issue a new API key (shown only once); the old key stops working at once.
    """
    with obj.manager() as manager:
        key = manager.rotate_key(tenant_id)
        record = manager.get(tenant_id).record
    _emit(
        as_json,
        {"id": tenant_id, "api_key": key, "key_id": record.key_id},
        f"new API key for {tenant_id!r} (shown once; store it now): {key}\n"
        "the old key no longer works",
    )


# -- usage and audit ------------------------------------------------------

#: Reports cover this many days back when ``--since`` is absent.
DEFAULT_REPORT_DAYS = 30

_TIME_FORMATS = [
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S",
]


def _window(
    since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    """
    Return the aware UTC window ``[since, until]``; naive times are UTC.
    """
    now = datetime.now(timezone.utc)
    end = now if until is None else _aware(until)
    start = (
        end - timedelta(days=DEFAULT_REPORT_DAYS) if since is None else _aware(since)
    )
    if start > end:
        msg = f"--since ({start.isoformat()}) is after --until ({end.isoformat()})"
        raise click.UsageError(msg)
    return start, end


def _aware(ts: datetime) -> datetime:
    return (
        ts.replace(tzinfo=timezone.utc)
        if ts.tzinfo is None
        else ts.astimezone(timezone.utc)
    )


def _window_options(fn: F) -> F:
    fn = click.option(
        "--until",
        type=click.DateTime(_TIME_FORMATS),
        help="Last instant included (UTC unless an offset is given; default: now).",
    )(fn)
    return click.option(
        "--since",
        type=click.DateTime(_TIME_FORMATS),
        help=f"First instant included (default: {DEFAULT_REPORT_DAYS} days before --until).",
    )(fn)


_tenants_option = click.option(
    "--tenant",
    "tenants",
    multiple=True,
    metavar="ID",
    help="A tenant (repeat; default: all).",
)


def _tenant_ids(stores: LMDBStores, chosen: tuple[str, ...]) -> list[str]:
    """
    The tenants chosen, or every tenant: the current ones and the deleted
    ones whose billing records are kept, so no usage is left out.
    """
    if chosen:
        return list(chosen)
    current = {r.id for r in stores.tenants.list()}
    return sorted(current.union(stores.billing.tenant_ids()))


def _deleted(stores: LMDBStores, ids: Sequence[str]) -> set[str]:
    """
    Which of *ids* name no current tenant.
    """
    current = {r.id for r in stores.tenants.list()}
    return {i for i in ids if i not in current}


def _progress(items: Sequence[str], label: str) -> Any:
    """
    A progress bar on standard error when it is a terminal, else the items.
    """
    return (
        click.progressbar(items, label=label, file=sys.stderr, show_pos=True)
        if sys.stderr.isatty() and len(items) > 1
        else _NoProgress(items)
    )


class _NoProgress:
    def __init__(self, items: Sequence[str]) -> None:
        self.items = items

    def __enter__(self) -> Sequence[str]:
        return self.items

    def __exit__(self, *exc: object) -> None:
        return None


@cli.group()
def usage() -> None:
    """
    Report and export token usage (billing records).
    """


@usage.command("report")
@_tenants_option
@_window_options
@click.option(
    "--by",
    type=click.Choice(["model,day", "model", "day", "total"]),
    default="model,day",
    show_default=True,
    help="How to group the totals.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.pass_obj
@_handle_errors
def usage_report(
    obj: _Context,
    tenants: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    by: str,
    fmt: str,
) -> None:
    """
    Total input and output tokens and requests per tenant, model and UTC day.

    Every tenant with usage is reported, deleted ones too (marked in the
    DELETED column / "deleted" field), so invoices miss nothing.
    """
    from zerfoo_cloud.metering import TokenMeter

    start, end = _window(since, until)
    keys = () if by == "total" else tuple(by.split(","))
    rows: list[dict[str, Any]] = []
    with obj.stores() as stores:
        meter = TokenMeter(stores.billing, background=False)
        ids = _tenant_ids(stores, tenants)
        deleted = _deleted(stores, ids)
        with _progress(ids, "summing usage") as progress:
            for tenant_id in progress:
                rows.extend(
                    {
                        "tenant": tenant_id,
                        "deleted": tenant_id in deleted,
                        "model": row.model,
                        "day": None if row.day is None else row.day.isoformat(),
                        "requests": row.requests,
                        "input_tokens": row.input_tokens,
                        "output_tokens": row.output_tokens,
                        "total_tokens": row.total_tokens,
                    }
                    for row in meter.summary(tenant_id, start, end, by=keys)
                )
        meter.close()
    columns = [
        "tenant",
        *(k for k in ("model", "day") if k in keys),
        "requests",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "deleted",
    ]
    if fmt == "json":
        click.echo(json.dumps([{c: r[c] for c in columns} for r in rows], indent=2))
    elif fmt == "csv":
        import csv
        import io

        from zerfoo_cloud.csv_cells import write_csv_row

        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for r in rows:
            write_csv_row(
                writer,
                (str(r[c]).lower() if c == "deleted" else r[c] for c in columns),
            )
        click.echo(buf.getvalue(), nl=False)
    elif not rows:
        click.echo(f"no usage between {start.isoformat()} and {end.isoformat()}")
    else:
        click.echo(
            render_table(
                [c.upper() for c in columns],
                [[_cell(r[c]) for c in columns] for r in rows],
            )
        )


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


@contextmanager
def _export_target(output: str | None) -> Iterator[IO[str]]:
    if output is None or output == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with Path(output).open("w", encoding="utf-8", newline="") as out:
        yield out


def _export_options(fn: F) -> F:
    fn = click.option(
        "--output", "-o", metavar="FILE", help="Write here instead of standard output."
    )(fn)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["ndjson", "csv"]),
        default="ndjson",
        show_default=True,
    )(fn)


@usage.command("export")
@_tenants_option
@_window_options
@_export_options
@click.pass_obj
@_handle_errors
def usage_export(
    obj: _Context,
    tenants: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    fmt: str,
    output: str | None,
) -> None:
    """
    Export billing records as NDJSON or CSV, oldest first per tenant.

    Deleted tenants' records are exported too; standard error names them.
    """
    from zerfoo_cloud.export import export_billing

    start, end = _window(since, until)
    count = 0
    with obj.stores() as stores:
        ids = _tenant_ids(stores, tenants)
        deleted = sorted(_deleted(stores, ids))
        with (
            _export_target(output) as out,
            _progress(ids, "exporting billing records") as progress,
        ):
            for i, tenant_id in enumerate(progress):
                records = stores.billing.query(tenant_id, start, end)
                if fmt == "csv" and i:
                    # One header for the whole file.
                    count += _export_rows_without_header(records, out)
                else:
                    count += export_billing(records, out, fmt=_format(fmt))
    click.echo(f"exported {count} billing records", err=True)
    if deleted:
        click.echo(f"deleted tenants included: {', '.join(deleted)}", err=True)


def _format(fmt: str) -> Literal["ndjson", "csv"]:
    return "csv" if fmt == "csv" else "ndjson"


def _export_rows_without_header(records: Sequence[Any], out: Any) -> int:
    import io

    from zerfoo_cloud.export import export_billing

    buf = io.StringIO()
    n = export_billing(records, buf, fmt="csv")
    out.write(buf.getvalue().split("\n", 1)[1] if n else "")
    return n


@cli.group()
def audit() -> None:
    """
    Query, verify and export the SOC 2 audit log.
    """


def _audit_logger(stores: LMDBStores) -> Any:
    from zerfoo_cloud.audit import AuditLogger

    secret = os.environ.get(AUDIT_SECRET_ENV) or None
    return AuditLogger(stores.audit, secret=secret, background=False)


@audit.command("query")
@click.option(
    "--tenant",
    "tenant_id",
    required=True,
    metavar="ID",
    help="The tenant whose entries to show.",
)
@_window_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@click.pass_obj
@_handle_errors
def audit_query(
    obj: _Context,
    tenant_id: str,
    since: datetime | None,
    until: datetime | None,
    fmt: str,
) -> None:
    """
    Show a tenant's audit entries, oldest first.
    """
    start, end = _window(since, until)
    with obj.stores() as stores:
        logger = _audit_logger(stores)
        entries = logger.query(tenant_id, start, end)
        logger.close()
    if fmt == "json":
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2, default=str))
        return
    if not entries:
        click.echo(f"no audit entries for {tenant_id!r} in that window")
        return
    click.echo(
        render_table(
            [
                "TIME",
                "ACTION",
                "RESULT",
                "STATUS",
                "METHOD",
                "PATH",
                "RESOURCE",
                "FROM",
            ],
            [
                [
                    e.timestamp.isoformat(timespec="seconds") if e.timestamp else "",
                    e.action.value,
                    e.result.value,
                    str(e.status_code),
                    e.method,
                    e.path,
                    e.resource,
                    e.remote_addr,
                ]
                for e in entries
            ],
        )
    )


@audit.command("verify")
@click.pass_obj
@_handle_errors
def audit_verify(obj: _Context) -> None:
    """
    Walk the whole audit log and check its hash chain (exit 1 if broken).

    Set ZERFOO_CLOUD_AUDIT_SECRET when the log is keyed.
    """
    with obj.stores() as stores:
        logger = _audit_logger(stores)
        result = logger.verify()
        logger.close()
    if result.ok:
        click.echo(
            f"audit log intact: {result.checked} entries, head {result.head.hash[:16]}…"
        )
        return
    msg = f"audit log BROKEN at entry {result.seq} ({result.problem.value if result.problem else '?'}): {result.message}"
    raise click.ClickException(msg)


@audit.command("export")
@_export_options
@click.pass_obj
@_handle_errors
def audit_export(obj: _Context, fmt: str, output: str | None) -> None:
    """
    Export the whole audit log, in chain order, with its hashes.
    """
    from zerfoo_cloud.export import export_audit

    with obj.stores() as stores, _export_target(output) as out:

        def visit(anchor: Any, head: Any, entries: Any) -> int:
            return export_audit(
                (e for _, e in entries if e is not None), out, fmt=_format(fmt)
            )

        count = stores.audit.walk(visit)
    click.echo(f"exported {count} audit entries", err=True)


# -- serve ------------------------------------------------------------------


def _import_features(*, upstream: bool, saml: bool, metrics: bool) -> None:
    """
    Import the modules of the features asked for, so a missing extra stops
    ``serve`` here, in one line, not in every worker process.
    """
    modules = {
        "zerfoo_cloud.http.proxy": upstream,
        "zerfoo_cloud.sso.provider": saml,
        "zerfoo_cloud.metrics": metrics,
    }
    for module, used in modules.items():
        if used:
            importlib.import_module(module)


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


@cli.command()
@click.argument("app", required=False, metavar="[MODULE:APP]")
@click.option(
    "--upstream",
    metavar="URL",
    help="Proxy to this OpenAI-compatible server instead of an app.",
)
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
    "--public-url", metavar="URL", help="This service's external URL (needed for SAML)."
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
    app: str | None,
    upstream: str | None,
    host: str,
    port: int,
    workers: int,
    durable: bool,
    max_body_bytes: int,
    metrics: bool,
    metrics_port: int | None,
    metrics_host: str,
    metrics_tenant_labels: bool,
    max_header_bytes: int,
    header_timeout: float,
    saml: tuple[str, ...],
    public_url: str | None,
    log_level: str,
) -> None:
    """
    Serve MODULE:APP (an ASGI or WSGI app) or --upstream URL as a multi-tenant service.

    Secrets come from the environment, never from flags: ZERFOO_CLOUD_ADMIN_KEY
    (or ZERFOO_CLOUD_ADMIN_KEY_HASH) for /admin, ZERFOO_CLOUD_UPSTREAM_KEY for
    the upstream, ZERFOO_CLOUD_SESSION_SECRET for SAML sessions and
    ZERFOO_CLOUD_AUDIT_SECRET for the audit chain, ZERFOO_CLOUD_METRICS_TOKEN
    for /metrics.

    /healthz answers while the process lives; /readyz answers 200 only while
    the store (and the upstream) can serve. No log line carries a key: query
    values and key-like path segments are logged as [redacted].
    """
    from zerfoo_cloud._access_log import log_config, redact_text
    from zerfoo_cloud._metrics_endpoint import metrics_token
    from zerfoo_cloud.serve import CONFIG_ENV, ServeConfig, load_app

    with needs_extra("server", "zerfoo-cloud serve"):
        import uvicorn
    if not obj.db:
        msg = f"no store given: pass --db PATH or set {DB_ENV}"
        raise click.UsageError(msg)
    if upstream is not None and not upstream.startswith(("http://", "https://")):
        msg = f"--upstream must be an http:// or https:// URL, not {upstream!r}"
        raise click.UsageError(msg)
    token = metrics_token()
    exposed = metrics and (metrics_port is not None or token is not None)
    _import_features(upstream=upstream is not None, saml=bool(saml), metrics=exposed)
    config = ServeConfig(
        db=str(Path(obj.db).resolve()),
        app=app,
        upstream=upstream,
        durable=durable,
        max_body_bytes=max_body_bytes,
        metrics=exposed,
        saml=_saml_pairs(saml),
        public_url=public_url,
        max_header_bytes=max_header_bytes,
        header_timeout=header_timeout,
        metrics_port=metrics_port if exposed else None,
        metrics_host=metrics_host,
        metrics_tenant_labels=metrics_tenant_labels,
    )
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
    LMDBStores.open(config.db).close()  # fail here if the store cannot be opened
    click.echo(
        redact_text(
            f"serving {app or upstream} on http://{host}:{port} with {workers} "
            f"worker(s); store {config.db}"
        ),
        err=True,
    )
    metrics_server = None
    if config.metrics_port is not None:
        from zerfoo_cloud._metrics_endpoint import MetricsPortServer
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
            http="zerfoo_cloud._http_limits:ServeProtocol",
            h11_max_incomplete_event_size=max_header_bytes,
        )
    finally:
        if metrics_server is not None:
            metrics_server.close()


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line with *argv* (default: ``sys.argv[1:]``); return the exit status.
    """
    try:
        status = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="zerfoo-cloud",
            standalone_mode=False,
        )
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except OSError as exc:  # e.g. a broken pipe or an unwritable output file
        click.echo(f"error: {exc}", err=True)
        return 1
    return status if isinstance(status, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
