"""
What the outbox tests read back from a primary, past its switch.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

from tests.outbox._primaries import Primary
from zerfoo_cloud.audit import verify_chain
from zerfoo_cloud.audit_records.chain import ChainLink
from zerfoo_cloud.audit_records.entry import AuditEntry

EARLY = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATE = datetime(2100, 1, 1, tzinfo=timezone.utc)


def billed_ids(primary: Primary, tenant: str = "acme") -> list[str]:
    """Every request id the primary holds for *tenant* (duplicates kept)."""
    return [r.request_id for r in primary.billing.inner.query(tenant, EARLY, LATE)]


def chain(primary: Primary) -> list[AuditEntry]:
    """Every entry of the primary's chain, in chain order."""

    def visit(
        anchor: ChainLink,
        head: ChainLink,
        entries: Iterator[tuple[int, AuditEntry | None]],
    ) -> list[AuditEntry]:
        found = []
        for _, entry in entries:
            assert entry is not None
            found.append(entry)
        return found

    return primary.audit.inner.walk(visit)


def chain_verifies(primary: Primary, key: bytes | None) -> bool:
    """Whether the primary's chain verifies with *key*."""
    return primary.audit.inner.walk(
        lambda anchor, head, entries: verify_chain(anchor, head, entries, key)
    ).ok
