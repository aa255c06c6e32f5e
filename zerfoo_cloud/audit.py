"""
SOC 2 audit logging.

`AuditLogger` stores one `AuditEntry` per auditable event in an
`AuditStore`. Entries never hold API keys, request or response bodies, or
query strings: the logger strips the query from every path it is given.
"""

from __future__ import annotations

import enum
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud.errors import InvalidConfigError

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.stores.protocols import AuditStore

__all__ = ["AuditAction", "AuditEntry", "AuditLogger", "AuditResult"]


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


def _optional_utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        msg = "timestamps must be timezone-aware (UTC)"
        raise InvalidConfigError(msg, field="timestamp")
    return ts.astimezone(timezone.utc)


def strip_query(path: str) -> str:
    """
    Return *path* without its query string or fragment.

    .. versionadded:: 0.1.0
    """
    for sep in ("?", "#"):
        path = path.split(sep, 1)[0]
    return path


@attrs.frozen
class AuditEntry:
    """
    One audited event. Holds no keys, bodies or query strings.

    *timestamp* ``None`` means "now": `AuditLogger.log` stamps it.

    .. versionadded:: 0.1.0
    """

    timestamp: datetime | None = attrs.field(default=None, converter=_optional_utc)
    tenant_id: str = ""
    action: AuditAction = attrs.field(
        default=AuditAction.INFERENCE, converter=AuditAction
    )
    result: AuditResult = attrs.field(
        default=AuditResult.SUCCESS, converter=AuditResult
    )
    resource: str = ""
    status_code: int = 0
    method: str = ""
    path: str = attrs.field(default="", converter=strip_query)
    remote_addr: str = ""


class AuditLogger:
    """
    Records audit entries in an `AuditStore` and queries them.

    .. versionadded:: 0.1.0
    """

    def __init__(self, store: AuditStore, *, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock

    def log(self, entry: AuditEntry) -> AuditEntry:
        """
        Store *entry* (stamped with the clock if it has no timestamp); return
        what was stored.
        """
        if entry.timestamp is None:
            entry = attrs.evolve(
                entry, timestamp=datetime.fromtimestamp(self.clock(), timezone.utc)
            )
        return self.store.append(entry)

    def query(self, tenant_id: str, start: datetime, end: datetime) -> list[AuditEntry]:
        """
        Return the tenant's entries with ``start <= timestamp <= end``, oldest first.
        """
        return self.store.query(tenant_id, start, end)

    def flush(self) -> None:
        """
        Return once every entry logged before the call is durable.
        """

    def close(self) -> None:
        """
        Flush and release resources.
        """
        self.flush()
