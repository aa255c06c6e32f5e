"""
``zerfoo-cloud key``: create, list, update, revoke and rotate a tenant's API
keys.

Every change is written to the audit log (a keyed log needs
``ZERFOO_CLOUD_AUDIT_SECRET``), naming the key by its id, never by itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.audit import AuditAction, AuditEntry, AuditResult
from zerfoo_cloud.cli._audit_commands import _audit_logger
from zerfoo_cloud.cli._context import _Context, _handle_errors
from zerfoo_cloud.cli._durations import parse_duration, parse_expiry
from zerfoo_cloud.cli._key_alerts import queue_key_alerts
from zerfoo_cloud.cli._output import _emit, _json_option, render_table
from zerfoo_cloud.tenants import TenantManager

if TYPE_CHECKING:
    from collections.abc import Callable

    from zerfoo_cloud.key_records import KeyRecord
    from zerfoo_cloud.tenants.key_events import KeyEvent

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


@click.group()
def key() -> None:
    """
    Create, list, update, revoke and rotate a tenant's API keys.
    """


def _limits(view: dict[str, Any]) -> str:
    # A key's own limits, as the LIMITS column shows them.
    shown = [
        f"{view[name]} {unit}"
        for name, unit in (
            ("rate_limit", "req/min"),
            ("token_budget", "tok/min"),
            ("max_concurrent_requests", "at once"),
        )
        if view[name]
    ]
    return ", ".join(shown) or "tenant's"


def _rows(keys: Sequence[KeyRecord], now: float) -> str:
    views = [k.view(now) for k in keys]
    return render_table(
        ["ID", "NAME", "PREFIX", "STATE", "CREATED", "EXPIRES", "MODELS", "LIMITS"],
        [
            [
                v["id"],
                v["name"],
                (v["prefix"] + "…") if v["prefix"] else "-",
                v["state"],
                v["created_at"],
                v["expires_at"] or "never",
                ", ".join(v["model_scope"]) or "all",
                _limits(v),
            ]
            for v in views
        ],
    )


def _key_limit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """
    The key's own limits, within the tenant's (absent: 0 on create,
    unchanged on update).
    """
    fn = click.option(
        "--max-concurrent",
        type=click.IntRange(min=0),
        help="Requests of this key in flight at once (0: only the tenant's limit).",
    )(fn)
    fn = click.option(
        "--token-budget",
        type=click.IntRange(min=0),
        help="Tokens per minute of this key (0: only the tenant's limit).",
    )(fn)
    return click.option(
        "--rate-limit",
        type=click.IntRange(min=0),
        help="Requests per minute of this key (0: only the tenant's limit).",
    )(fn)


@contextmanager
def _keys(obj: _Context) -> Iterator[tuple[TenantManager, Any]]:
    # The manager and an audit logger on the same stores.
    # With Redis counters, each change is announced to every host; key
    # alerts go to this host's alert outbox.
    with obj.stores() as stores:
        audit = _audit_logger(stores)
        events: list[KeyEvent] = []
        manager = TenantManager(
            stores.tenants,
            limits=stores.limits,
            revocations=stores.revocations,
            key_events=events.append,
        )
        try:
            yield manager, audit
            queue_key_alerts(str(obj.db), events, audit)
        finally:
            manager.close()
            audit.close()


def _audited(audit: Any, tenant_id: str, action: AuditAction, what: str) -> None:
    audit.log(
        AuditEntry(
            tenant_id=tenant_id,
            action=action,
            result=AuditResult.SUCCESS,
            resource=what,
            method="CLI",
            path="/keys",
        )
    )


@key.command("create")
@click.argument("tenant_id")
@click.option(
    "--name", required=True, help="A label for the key (1 to 100 characters)."
)
@click.option(
    "--expires",
    metavar="DURATION|TIME",
    help="When the key stops working: a duration (30d, 12h) or an ISO 8601 time.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME",
    help="A model the key may use, within the tenant's (repeat; none: all of them).",
)
@_key_limit_options
@_json_option
@click.pass_obj
@_handle_errors
def key_create(
    obj: _Context,
    tenant_id: str,
    name: str,
    expires: str | None,
    models: tuple[str, ...],
    rate_limit: int | None,
    token_budget: int | None,
    max_concurrent: int | None,
    as_json: bool,
) -> None:
    """
    Issue a new API key for TENANT_ID and print it (shown only once).
    """
    now = time.time()
    expires_at = None if expires is None else parse_expiry(expires, now)
    with _keys(obj) as (manager, audit):
        secret, made = manager.create_key(
            tenant_id,
            name=name,
            expires_at=expires_at,
            model_scope=models,
            rate_limit=rate_limit or 0,
            token_budget=token_budget or 0,
            max_concurrent_requests=max_concurrent or 0,
        )
        _audited(audit, tenant_id, AuditAction.CREATE, f"key {made.id}")
    _emit(
        as_json,
        made.view(now) | {"api_key": secret},
        f"created key {made.id} for {tenant_id!r}\n"
        f"API key (shown once; store it now): {secret}\n\n" + _rows([made], now),
    )


@key.command("list")
@click.argument("tenant_id")
@_json_option
@click.pass_obj
@_handle_errors
def key_list(obj: _Context, tenant_id: str, as_json: bool) -> None:
    """
    List TENANT_ID's keys: ids, names, prefixes and states, never the keys.
    """
    now = time.time()
    with obj.manager() as manager:
        keys = manager.list_keys(tenant_id)
    _emit(as_json, [k.view(now) for k in keys], _rows(keys, now))


@key.command("update")
@click.argument("tenant_id")
@click.argument("key_id")
@click.option("--name", help="A new label for the key (1 to 100 characters).")
@click.option(
    "--expires",
    metavar="DURATION|TIME",
    help="When the key stops working: a duration (30d, 12h) or an ISO 8601 time.",
)
@click.option("--no-expiry", is_flag=True, help="The key never expires.")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME",
    help="A model the key may use, within the tenant's (repeat; replaces the scope).",
)
@click.option(
    "--all-models", is_flag=True, help="The key may use every model the tenant may."
)
@_key_limit_options
@_json_option
@click.pass_obj
@_handle_errors
def key_update(
    obj: _Context,
    tenant_id: str,
    key_id: str,
    name: str | None,
    expires: str | None,
    no_expiry: bool,
    models: tuple[str, ...],
    all_models: bool,
    rate_limit: int | None,
    token_budget: int | None,
    max_concurrent: int | None,
    as_json: bool,
) -> None:
    """
    Change key KEY_ID of TENANT_ID: its name, expiry, models or own limits;
    other settings stay.
    """
    if models and all_models:
        msg = "give either --model or --all-models, not both"
        raise click.UsageError(msg)
    if expires is not None and no_expiry:
        msg = "give either --expires or --no-expiry, not both"
        raise click.UsageError(msg)
    now = time.time()
    expires_at: float | EllipsisType | None = ...
    if no_expiry:
        expires_at = None
    elif expires is not None:
        expires_at = parse_expiry(expires, now)
    scope: tuple[str, ...] | None = () if all_models else (models or None)
    limits = {
        "rate_limit": rate_limit,
        "token_budget": token_budget,
        "max_concurrent_requests": max_concurrent,
    }
    changed = [n for n, v in (("name", name), ("model_scope", scope)) if v is not None]
    changed += [n for n, v in limits.items() if v is not None]
    if expires_at is not ...:
        changed.append("expires_at")
    if not changed:
        msg = (
            "nothing to change: give --name, --expires, --no-expiry, --model, "
            "--all-models, --rate-limit, --token-budget or --max-concurrent"
        )
        raise click.UsageError(msg)
    with _keys(obj) as (manager, audit):
        updated = manager.update_key(
            tenant_id,
            key_id,
            name=name,
            expires_at=expires_at,
            model_scope=scope,
            rate_limit=rate_limit,
            token_budget=token_budget,
            max_concurrent_requests=max_concurrent,
        )
        _audited(
            audit,
            tenant_id,
            AuditAction.UPDATE,
            f"key {updated.id} updated: {', '.join(sorted(changed))}",
        )
    _emit(as_json, updated.view(now), _rows([updated], now))


@key.command("revoke")
@click.argument("tenant_id")
@click.argument("key_id")
@_json_option
@click.pass_obj
@_handle_errors
def key_revoke(obj: _Context, tenant_id: str, key_id: str, as_json: bool) -> None:
    """
    Revoke key KEY_ID of TENANT_ID: it stops working at once.
    """
    now = time.time()
    with _keys(obj) as (manager, audit):
        revoked = manager.revoke_key(tenant_id, key_id)
        _audited(audit, tenant_id, AuditAction.DELETE, f"key {revoked.id}")
    _emit(
        as_json,
        revoked.view(now),
        f"revoked key {revoked.id} of {tenant_id!r}",
    )


@key.command("rotate")
@click.argument("tenant_id")
@click.argument("key_id")
@click.option(
    "--grace",
    default="0",
    show_default=True,
    metavar="DURATION",
    help="How long the old key keeps working (90s, 15m, 1h, 7d; at most 30d).",
)
@_json_option
@click.pass_obj
@_handle_errors
def key_rotate(
    obj: _Context, tenant_id: str, key_id: str, grace: str, as_json: bool
) -> None:
    """
    Replace key KEY_ID of TENANT_ID by a new one (printed, shown only once).
    """
    seconds = parse_duration(grace, "--grace")
    now = time.time()
    with _keys(obj) as (manager, audit):
        secret, new, old = manager.rotate_api_key(tenant_id, key_id, grace=seconds)
        _audited(
            audit, tenant_id, AuditAction.UPDATE, f"key {old.id} rotated to {new.id}"
        )
    until = (
        f"the old key works until {old.view(now)['expires_at']}"
        if old.revoked_at is None
        else "the old key no longer works"
    )
    _emit(
        as_json,
        new.view(now) | {"api_key": secret, "old_key": old.view(now)},
        f"new key {new.id} for {tenant_id!r} (shown once; store it now): {secret}\n"
        + until,
    )
