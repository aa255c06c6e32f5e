"""
The kinds of audited operation (`AuditAction`) and their outcomes (`AuditResult`).
"""

from __future__ import annotations

import enum

__all__ = ["AuditAction", "AuditResult"]


class AuditAction(str, enum.Enum):
    """
    The kind of operation audited.

    .. versionadded:: 0.1.0
    """

    INFERENCE = "inference"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    LIST = "list"
    AUTH = "auth"
    #: An alert event was queued for its webhooks (resource ``alert:TYPE:ID``).
    ALERT = "alert"


class AuditResult(str, enum.Enum):
    """
    The outcome of an audited operation.

    .. versionadded:: 0.1.0
    """

    SUCCESS = "success"
    DENIED = "denied"
    RATE_LIMITED = "rate_limited"
    ERROR = "error"
    UNAUTHORIZED = "unauthorized"
    #: The request was served, but the usage the app reported was more than
    #: a billing record holds; it was billed the most a record holds.
    USAGE_CLAMPED = "usage_clamped"
    #: The request was served, but the app reported more tokens than were
    #: reserved and its cost left a spend budget over its amount; the whole
    #: cost was charged.
    BUDGET_OVERRUN = "budget_overrun"
