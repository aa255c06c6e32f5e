"""
Verification of the hash chain: `verify_chain` and its verdict,
`AuditVerification`, naming the first `AuditProblem`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud.audit_records.chain import ChainLink, entry_hash
from zerfoo_cloud.errors import AuditChainError

if TYPE_CHECKING:
    from zerfoo_cloud.audit_records.entry import AuditEntry

__all__ = ["AuditProblem", "AuditVerification", "verify_chain"]


class AuditProblem(str, enum.Enum):
    """
    How the hash chain was found broken.

    .. versionadded:: 0.1.0
    """

    #: The entry's content does not match its hash, or cannot be decoded.
    ALTERED = "altered"
    #: Entries are missing (from the middle, or from the end before the head).
    REMOVED = "removed"
    #: The entry does not follow its predecessor, or lies past the head.
    INSERTED = "inserted"
    #: The entry is not where its sequence number says it belongs.
    REORDERED = "reordered"


@attrs.frozen
class AuditVerification:
    """
    What `AuditLogger.verify` found.

    Attributes:
        ok: the whole log is one valid chain from *anchor* to *head*.
        checked: how many entries were found intact before the first problem.
        anchor: where the log starts (the last purged entry, or `GENESIS`).
        head: where the store says the log ends.
        seq: the position where the chain first breaks (``None`` if ok).
        problem: how it breaks (``None`` if ok).
        message: what was found, for people.

    .. versionadded:: 0.1.0
    """

    ok: bool
    checked: int
    anchor: ChainLink
    head: ChainLink
    seq: int | None = None
    problem: AuditProblem | None = None
    message: str = "the audit log is intact"

    def check(self) -> None:
        """
        Raise `AuditChainError` if the chain is broken.
        """
        if not self.ok:
            assert self.seq is not None
            assert self.problem is not None
            raise AuditChainError(
                self.message, seq=self.seq, problem=self.problem.value
            )


_Break = tuple[int, AuditProblem, str]


def _check_entry(  # noqa: PLR0911 - one return per kind of break
    position: int, entry: AuditEntry | None, expected: int, prev: str, key: bytes | None
) -> _Break | None:
    if position > expected:
        return expected, AuditProblem.REMOVED, "is missing: it was removed or moved"
    if position < expected:
        return (
            expected,
            AuditProblem.REORDERED,
            f"is followed by another entry {position}: entries were copied or moved",
        )
    if entry is None:
        return position, AuditProblem.ALTERED, "cannot be decoded: it was altered"
    if entry.seq != position:
        return (
            position,
            AuditProblem.REORDERED,
            f"holds entry {entry.seq}: entries were moved",
        )
    if entry.prev_hash != prev:
        return (
            position,
            AuditProblem.INSERTED,
            "does not follow the entry before it: an entry was inserted or replaced",
        )
    if entry_hash(entry, key) != entry.hash:
        return position, AuditProblem.ALTERED, "does not match its hash: it was altered"
    return None


def _check_end(last: ChainLink, head: ChainLink) -> _Break | None:
    if last.seq < head.seq:
        return (
            last.seq + 1,
            AuditProblem.REMOVED,
            f"to {head.seq} (the head) are missing: they were removed",
        )
    if last.seq > head.seq:
        return (
            head.seq + 1,
            AuditProblem.INSERTED,
            "lies past the head: it was inserted",
        )
    if last.hash != head.hash:
        return (
            last.seq,
            AuditProblem.ALTERED,
            "does not match the head's hash: it was altered",
        )
    return None


def verify_chain(
    anchor: ChainLink,
    head: ChainLink,
    entries: Iterable[tuple[int, AuditEntry | None]],
    key: bytes | None = None,
) -> AuditVerification:
    """
    Check that *entries* form one chain from *anchor* to *head*.

    *entries* yields ``(position, entry)`` in position order, the entry
    ``None`` where a stored record cannot be decoded. Stores hand their
    entries to this through `ChainedAuditStore.walk`.

    Returns:
        The verdict, naming the first position where the chain breaks.

    .. versionadded:: 0.1.0
    """
    expected = anchor.seq + 1
    prev = anchor.hash
    found: _Break | None = None
    for position, entry in entries:
        found = _check_entry(position, entry, expected, prev, key)
        if found is not None:
            break
        assert entry is not None
        prev = entry.hash
        expected += 1
    else:
        found = _check_end(ChainLink(expected - 1, prev), head)
    if found is None:
        return AuditVerification(
            ok=True, checked=expected - 1 - anchor.seq, anchor=anchor, head=head
        )
    seq, problem, what = found
    return AuditVerification(
        ok=False,
        checked=expected - 1 - anchor.seq,
        anchor=anchor,
        head=head,
        seq=seq,
        problem=problem,
        message=f"audit entry {seq} {what}",
    )
