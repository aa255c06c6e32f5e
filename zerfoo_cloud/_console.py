"""
The ``zerfoo-cloud`` console script.

It imports the command line only when run, so a missing ``cli`` extra (or
any other extra a command needs) prints one line naming the extra instead
of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from zerfoo_cloud.errors import MissingExtraError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run ``zerfoo-cloud`` with *argv* (default: ``sys.argv[1:]``); return the
    exit status, 1 with one line on stderr when an extra is missing.
    """
    try:
        from zerfoo_cloud.cli import main as run

        return run(argv)
    except MissingExtraError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 1
