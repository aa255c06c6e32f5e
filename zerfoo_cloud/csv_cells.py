"""
Spreadsheet-safe CSV cells: the one escaping rule of every CSV this
project writes (usage reports, billing and audit exports).

A spreadsheet that opens a CSV file runs a cell as a formula when its text
starts with ``=``, ``+``, ``-`` or ``@`` (some also after leading blanks,
some after a tab or a line break). Following OWASP's guidance on CSV
injection, a text cell whose first character is one of ``= + - @``, a tab,
a carriage return or a line feed, or whose first non-whitespace character
is one of ``= + - @``, is written with a leading ``'``: the spreadsheet
shows the text as it is, and ``csv.reader`` gives it back with that one
``'`` in front.

Numbers stay numbers: only ``str`` values are escaped. Counts and totals
reach the writer as Python ``int`` (never as text), so they are written as
plain digits a spreadsheet can sum; a model *named* ``-1`` is text and is
escaped. ``None`` is an empty cell.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["FORMULA_TRIGGERS", "csv_cell", "write_csv_row"]

#: Characters that make a spreadsheet read a cell as a formula when they
#: start it (the last three only as its very first character).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
_AFTER_BLANKS = ("=", "+", "-", "@")


def csv_cell(value: object) -> object:
    """
    Return *value* as it may be written to a CSV cell.

    Text that a spreadsheet could run as a formula (see the module) gets a
    leading ``'``; ``None`` becomes ``""``; anything else (numbers) is
    returned unchanged.
    """
    if value is None:
        return ""
    if isinstance(value, str) and (
        value.startswith(FORMULA_TRIGGERS) or value.lstrip().startswith(_AFTER_BLANKS)
    ):
        return "'" + value
    return value


def write_csv_row(writer: Any, cells: Iterable[object]) -> None:
    """
    Write one row of *cells*, each through `csv_cell`, with *writer* (a
    ``csv.writer``).
    """
    writer.writerow([csv_cell(cell) for cell in cells])
