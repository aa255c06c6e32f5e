"""
What a signed-in person may do in the console: `Role`.
"""

from __future__ import annotations

import enum

__all__ = ["Role"]


class Role(enum.Enum):
    """
    A console role: ``ADMIN`` reads and changes its own tenant, ``VIEWER``
    only reads it, ``OPERATOR`` reads and changes every tenant.

    .. versionadded:: 0.1.0
    """

    ADMIN = "admin"
    VIEWER = "viewer"
    OPERATOR = "operator"
