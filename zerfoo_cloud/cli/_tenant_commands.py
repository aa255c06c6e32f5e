"""
``zerfoo-cloud tenant``: create, list, show, update, delete and re-key
tenants, and sign their people out of the console.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.cli._budget_commands import _audited_manager
from zerfoo_cloud.cli._context import F, _Context, _handle_errors
from zerfoo_cloud.cli._output import (
    _emit,
    _json_option,
    render_table,
)
from zerfoo_cloud.tenants import TenantConfig, TenantRecord, generate_api_key

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


@click.group()
def tenant() -> None:
    """
    Create, list, show, update, delete and re-key tenants.
    """


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
    Delete a tenant; its keys stop working at once. Billing and audit records stay.
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
    Issue a new API key (shown only once); the old first key stops working at once (see 'key rotate' for the others).
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


@tenant.command("sign-out")
@click.argument("tenant_id")
@click.option(
    "--user",
    "subject",
    metavar="SUBJECT",
    help="Sign out only this person (the SAML NameID or OIDC sub).",
)
@_json_option
@click.pass_obj
@_handle_errors
def tenant_sign_out(
    obj: _Context, tenant_id: str, subject: str | None, as_json: bool
) -> None:
    """
    End the tenant's console and admin-API sessions issued until now (or one person's); they sign in again.
    """
    with _audited_manager(obj) as manager:
        record = manager.sign_out(tenant_id, subject=subject, actor="cli")
    whom = "everyone" if subject is None else repr(subject)
    _emit(
        as_json,
        {
            "id": tenant_id,
            "subject": subject,
            "not_before": record.sessions_valid_from(subject or ""),
        },
        f"signed {whom} out of tenant {tenant_id!r}",
    )
