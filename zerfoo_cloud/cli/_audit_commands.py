"""
``zerfoo-cloud audit``: query, verify and export the audit log.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.audit import AuditLogger
from zerfoo_cloud.cli._context import _Context, _handle_errors
from zerfoo_cloud.cli._export_output import _export_options, _export_target, _format
from zerfoo_cloud.cli._output import render_table
from zerfoo_cloud.cli._window import _window, _window_options
from zerfoo_cloud.export import export_audit
from zerfoo_cloud.serve import AUDIT_SECRET_ENV
from zerfoo_cloud.stores.open import Stores

if TYPE_CHECKING:
    from zerfoo_cloud.stores.protocols import ChainedAuditStore

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


@click.group()
def audit() -> None:
    """
    Query, verify and export the SOC 2 audit log.
    """


def _audit_logger(stores: Stores) -> Any:
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
    with obj.stores() as stores, _export_target(output) as out:

        def visit(anchor: Any, head: Any, entries: Any) -> int:
            return export_audit(
                (e for _, e in entries if e is not None), out, fmt=_format(fmt)
            )

        count = cast("ChainedAuditStore", stores.audit).walk(visit)
    click.echo(f"exported {count} audit entries", err=True)
