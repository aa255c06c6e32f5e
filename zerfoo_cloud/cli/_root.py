"""
The ``zerfoo-cloud`` command group: ``--db``, ``--version``, and its
command groups.
"""

from __future__ import annotations

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.cli._audit_commands import audit
from zerfoo_cloud.cli._context import DB_ENV, _Context
from zerfoo_cloud.cli._db_commands import db
from zerfoo_cloud.cli._serve_command import serve
from zerfoo_cloud.cli._tenant_commands import tenant
from zerfoo_cloud.cli._usage_commands import usage

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


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


for _command in (tenant, usage, audit, serve, db):
    cli.add_command(_command)
