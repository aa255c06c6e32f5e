"""
The ``zerfoo-cloud`` command group: ``--db``, ``--counters``, ``--version``,
and its command groups.
"""

from __future__ import annotations

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.cli._alerts_commands import alerts
from zerfoo_cloud.cli._audit_commands import audit
from zerfoo_cloud.cli._budget_commands import budget
from zerfoo_cloud.cli._context import DB_ENV, _Context
from zerfoo_cloud.cli._db_commands import db
from zerfoo_cloud.cli._invoice_command import invoice
from zerfoo_cloud.cli._key_commands import key
from zerfoo_cloud.cli._price_commands import prices
from zerfoo_cloud.cli._serve_command import serve
from zerfoo_cloud.cli._tenant_commands import tenant
from zerfoo_cloud.cli._usage_commands import usage
from zerfoo_cloud.stores.open import COUNTERS_ENV

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar=DB_ENV,
    metavar="PATH|URL",
    help="The records store (tenants, billing, audit): a folder, lmdb:///FOLDER, "
    f"memory:// or postgresql://... (default: ${DB_ENV}).",
)
@click.option(
    "--counters",
    envvar=COUNTERS_ENV,
    metavar="PATH|URL",
    help="The counters store (limits, concurrency slots, SAML replay cache): a "
    "folder, lmdb:///FOLDER, memory:// or redis://HOST:6379/0 (default: "
    f"${COUNTERS_ENV}, else the records store). Give a password in the "
    "variable, not here: flags show up in ps.",
)
@click.version_option(package_name="zerfoo-cloud")
@click.pass_context
def cli(ctx: click.Context, db: str | None, counters: str | None) -> None:
    """
    Manage a zerfoo-cloud service: tenants, usage, invoices, audit, and the server.
    """
    ctx.obj = _Context(db, counters)


for _command in (tenant, key, usage, invoice, audit, alerts, serve, db, prices, budget):
    cli.add_command(_command)
