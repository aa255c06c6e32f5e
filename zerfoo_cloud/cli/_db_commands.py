"""
``zerfoo-cloud db``: the PostgreSQL database's schema.
"""

from __future__ import annotations

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.cli._context import DB_ENV, _Context, _handle_errors

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


@click.group()
def db() -> None:
    """
    Manage the PostgreSQL database of a fleet.
    """


@db.command("upgrade")
@click.option(
    "--db",
    "url",
    envvar=DB_ENV,
    metavar="URL",
    help=f"The database, postgresql://user@host:5432/dbname (default: ${DB_ENV}).",
)
@click.pass_obj
@_handle_errors
def db_upgrade(obj: _Context, url: str | None) -> None:
    """
    Bring the database's schema up to this version's; safe to run again,
    and from several hosts at once.
    """
    url = url or obj.db
    if not url:
        msg = f"no database given: pass --db URL or set {DB_ENV}"
        raise click.UsageError(msg)
    # The postgres extra is needed by this command only.
    from zerfoo_cloud.stores.postgres import upgrade_schema

    before, after = upgrade_schema(url)
    click.echo(f"schema at version {after} (was {before})")
