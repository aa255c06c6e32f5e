"""
The ``zerfoo-cloud`` command: manage tenants, report usage, audit, serve.

Every command works on an LMDB store folder given by ``--db`` or the
``ZERFOO_CLOUD_DB`` environment variable. It can run while servers use the
same folder: what it changes takes effect at their next request.

Expected failures (a bad flag, a missing store, an unknown tenant) print one
line saying what to do and exit with status 1 (2 for usage errors); they
never print a traceback.

Each command group has a module of its own; this package names them all.
"""

from __future__ import annotations

from zerfoo_cloud.cli._audit_commands import audit as audit
from zerfoo_cloud.cli._audit_commands import audit_export as audit_export
from zerfoo_cloud.cli._audit_commands import audit_query as audit_query
from zerfoo_cloud.cli._audit_commands import audit_verify as audit_verify
from zerfoo_cloud.cli._context import DB_ENV
from zerfoo_cloud.cli._invoice_command import invoice as invoice
from zerfoo_cloud.cli._main import main
from zerfoo_cloud.cli._output import render_table
from zerfoo_cloud.cli._root import cli as cli
from zerfoo_cloud.cli._serve_command import serve as serve
from zerfoo_cloud.cli._tenant_commands import (
    DEFAULT_RATE_LIMIT,
    DEFAULT_TOKEN_BUDGET,
)
from zerfoo_cloud.cli._tenant_commands import tenant as tenant
from zerfoo_cloud.cli._tenant_commands import tenant_create as tenant_create
from zerfoo_cloud.cli._tenant_commands import tenant_delete as tenant_delete
from zerfoo_cloud.cli._tenant_commands import tenant_list as tenant_list
from zerfoo_cloud.cli._tenant_commands import tenant_rotate_key as tenant_rotate_key
from zerfoo_cloud.cli._tenant_commands import tenant_show as tenant_show
from zerfoo_cloud.cli._tenant_commands import tenant_update as tenant_update
from zerfoo_cloud.cli._usage_commands import usage as usage
from zerfoo_cloud.cli._usage_commands import usage_export as usage_export
from zerfoo_cloud.cli._usage_commands import usage_report as usage_report
from zerfoo_cloud.cli._window import DEFAULT_REPORT_DAYS as DEFAULT_REPORT_DAYS
from zerfoo_cloud.serve import AUDIT_SECRET_ENV

__all__ = [
    "AUDIT_SECRET_ENV",
    "DB_ENV",
    "DEFAULT_RATE_LIMIT",
    "DEFAULT_TOKEN_BUDGET",
    "main",
    "render_table",
]
