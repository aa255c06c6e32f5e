"""
How commands print: aligned tables, and JSON under ``--json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from zerfoo_cloud._extras import needs_extra

with needs_extra("cli", "the zerfoo-cloud command"):
    import click


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """
    Render *rows* under *headers* as an aligned plain-text table.
    """
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
    return "\n".join(lines)


def _emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
