"""
Running the command line: its exit status, and one line (no traceback)
for an expected failure.
"""

from __future__ import annotations

from collections.abc import Sequence

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.cli._root import cli

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


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
