"""
The command line's layout: one module per command group, behind the
``zerfoo_cloud.cli`` names that scripts and tests import.
"""

from __future__ import annotations

import importlib

import pytest

import zerfoo_cloud.cli
from zerfoo_cloud.cli import cli

#: The names ``zerfoo_cloud.cli`` has always offered.
PUBLIC_NAMES = (
    "AUDIT_SECRET_ENV",
    "DB_ENV",
    "DEFAULT_RATE_LIMIT",
    "DEFAULT_REPORT_DAYS",
    "DEFAULT_TOKEN_BUDGET",
    "audit",
    "audit_export",
    "audit_query",
    "audit_verify",
    "cli",
    "main",
    "render_table",
    "serve",
    "tenant",
    "tenant_create",
    "tenant_delete",
    "tenant_list",
    "tenant_rotate_key",
    "tenant_show",
    "tenant_update",
    "usage",
    "usage_export",
    "usage_report",
)


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_name_is_importable_from_the_package(name: str) -> None:
    """Every name the command line offered is still there."""
    assert getattr(zerfoo_cloud.cli, name) is not None


@pytest.mark.parametrize(
    ("command", "module"),
    [
        ("tenant", "zerfoo_cloud.cli._tenant_commands"),
        ("usage", "zerfoo_cloud.cli._usage_commands"),
        ("audit", "zerfoo_cloud.cli._audit_commands"),
        ("serve", "zerfoo_cloud.cli._serve_command"),
    ],
)
def test_each_command_group_has_a_module_of_its_own(command: str, module: str) -> None:
    """A command group and its subcommands are defined in one module."""
    group = cli.commands[command]
    assert group.callback is not None
    assert group.callback.__module__ == module
    assert importlib.import_module(module).__doc__
    for sub in getattr(group, "commands", {}).values():
        assert sub.callback is not None
        assert sub.callback.__module__ == module
