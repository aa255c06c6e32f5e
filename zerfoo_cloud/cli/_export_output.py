"""
Where exports go: ``--output FILE`` or standard output, as NDJSON or CSV
(``--format``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.cli._context import F

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


@contextmanager
def _export_target(output: str | None) -> Iterator[IO[str]]:
    if output is None or output == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with Path(output).open("w", encoding="utf-8", newline="") as out:
        yield out


def _export_options(fn: F) -> F:
    fn = click.option(
        "--output", "-o", metavar="FILE", help="Write here instead of standard output."
    )(fn)
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["ndjson", "csv"]),
        default="ndjson",
        show_default=True,
    )(fn)


def _format(fmt: str) -> Literal["ndjson", "csv"]:
    return "csv" if fmt == "csv" else "ndjson"
