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

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import click

from zerfoo_cloud.errors import CloudError
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.tenants import TenantConfig, TenantManager, TenantRecord

__all__ = ["DB_ENV", "main"]

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


def _limits_options(fn: F) -> F:
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
        help="Tokens per minute (0: unlimited).",
    )(fn)
    return click.option(
        "--rate-limit",
        type=click.IntRange(min=0),
        help="Requests per minute (0: unlimited).",
    )(fn)


@tenant.command("create")
@click.argument("tenant_id")
@_limits_options
@_json_option
@click.pass_obj
@_handle_errors
def tenant_create(
    obj: _Context,
    tenant_id: str,
    rate_limit: int | None,
    token_budget: int | None,
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
                rate_limit=60 if rate_limit is None else rate_limit,
                token_budget=100_000 if token_budget is None else token_budget,
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
