"""
`OutboxAuditStore`: a chained audit store that keeps in a local outbox the
entries its primary (the records database) cannot take now, and links them
into the primary's chain when they are drained.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from zerfoo_cloud.audit_records.chain import link_entry
from zerfoo_cloud.billing_records import new_request_id
from zerfoo_cloud.errors import StoreUnavailableError
from zerfoo_cloud.stores.outbox._codec import check_entries, decode_audit, encode_audit

if TYPE_CHECKING:
    from datetime import datetime

    from zerfoo_cloud.audit_records.chain import ChainLink
    from zerfoo_cloud.audit_records.entry import AuditEntry
    from zerfoo_cloud.stores.outbox._outbox import Outbox
    from zerfoo_cloud.stores.protocols import ChainedAuditStore

__all__ = ["OutboxAuditStore", "takes_batch_key"]

T = TypeVar("T")

_Link = Callable[["ChainLink", "AuditEntry"], "AuditEntry"]

_log = logging.getLogger("zerfoo_cloud.outbox")


def takes_batch_key(store: object) -> bool:
    """
    Whether *store*'s ``append_linked`` takes a ``batch_key`` keyword
    (`zerfoo_cloud.stores.protocols.KeyedAuditStore`).
    """
    method = getattr(store, "append_linked", None)
    if method is None:
        return False
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get("batch_key")
    return parameter is not None and parameter.kind in {
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    }


class OutboxAuditStore:
    """
    A `zerfoo_cloud.stores.protocols.ChainedAuditStore` over a *primary*
    chained audit store (the shared records database) that loses nothing
    while the primary cannot be reached.

    `append_linked` goes to the primary while the outbox holds no audit
    entries. When the primary raises
    `zerfoo_cloud.errors.StoreUnavailableError` (only then; other errors
    are raised and the logger's writer keeps the batch), the entries are
    written to *outbox* unlinked, in one fsynced transaction, and ``[]`` is
    returned: they have no place in the chain yet. While entries wait, new
    batches go behind them, so the chain keeps their arrival order.

    **Linking later.** The chain's head lives in the primary, so waiting
    entries are linked when drained, inside the primary's transaction,
    with the *link* of the latest `append_linked` call, or the one an
    `zerfoo_cloud.audit.AuditLogger` hands over when it is made
    (`adopt_link`; its HMAC secret stays in memory, never in the outbox).
    A process killed with entries in the outbox leaves them there; the
    next process to open the outbox drains them once its logger is made,
    linked with that logger's secret. Until a link is known, audit
    entries wait.

    **Exactly once.** Over a primary whose ``append_linked`` takes a
    ``batch_key`` (`zerfoo_cloud.stores.protocols.KeyedAuditStore`, such
    as the PostgreSQL audit store), every batch gets a key (a new id,
    unique across processes, `zerfoo_cloud.billing_records.new_request_id`)
    before its first try, kept with it in the outbox: a batch the primary
    committed but could not confirm, or committed just before a crash,
    is stored once however often it is sent. Over a primary without one
    the drain is at least once: a crash between the primary's commit and
    the outbox's delete stores that batch again (the chain still
    verifies; the entries appear twice).

    Reads (`query`, `walk`, `purge`) go to the primary; entries in the
    outbox are not among them until drained (`pending`).
    """

    kind = "audit"

    def __init__(self, primary: ChainedAuditStore, outbox: Outbox) -> None:
        self.primary = primary
        self.outbox = outbox
        self.keyed = takes_batch_key(primary)
        self._link: _Link | None = None
        self._waiting_logged = False
        outbox.attach(self)

    def adopt_link(self, link: _Link) -> None:
        """
        Link drained entries with *link* from now on (until another is
        given), and start draining what waits for one.
        """
        self._link = link
        self.outbox.wake()

    def append(self, entry: AuditEntry) -> AuditEntry:
        """
        Append *entry* chained with unkeyed SHA-256; return what was
        stored, or *entry* itself, unlinked, when it was kept in the outbox.
        """
        stored = self.append_linked([entry], link_entry)
        return stored[0] if stored else entry.unchained()

    def append_linked(
        self,
        entries: Sequence[AuditEntry],
        link: _Link,
    ) -> list[AuditEntry]:
        """
        Append *entries* to the primary, each as ``link(previous, entry)``;
        or keep them durably in the outbox while the primary is
        unavailable or entries wait there, and return ``[]``.

        *link* becomes the link of drained entries too (`adopt_link`).

        Raises:
            InvalidConfigError: an entry has no timestamp or too long a
                tenant id; nothing was kept.
            StoreError: the primary failed otherwise (nothing was kept), or
                the outbox cannot be written (`StoreFullError`: full).
        """
        if not entries:
            return []
        self._link = link
        check_entries(entries)
        key = new_request_id() if self.keyed else ""
        if not self.outbox.pending("audit"):
            try:
                return self._send(entries, link, key)
            except StoreUnavailableError as exc:
                _log.debug("audit entries go to the outbox: %s", exc)
        self.outbox.put("audit", len(entries), encode_audit(key, entries))
        return []

    def _send(
        self, entries: Sequence[AuditEntry], link: _Link, key: str
    ) -> list[AuditEntry]:
        if key:
            return self.primary.append_linked(  # type: ignore[call-arg] # KeyedAuditStore
                entries, link, batch_key=key
            )
        return self.primary.append_linked(entries, link)

    def drain_once(self) -> int:
        """
        Link the oldest waiting batch into the primary's chain, then delete
        it; return how many entries that was (0 while no link is known).

        Raises:
            Exception: what the primary raised; the batch stays.
        """
        link = self._link
        if link is None:
            if not self._waiting_logged and self.outbox.pending("audit"):
                self._waiting_logged = True
                _log.warning(
                    "%d audit entries wait in the outbox for an audit logger "
                    "to link them",
                    self.outbox.pending("audit"),
                )
            return 0
        batches = self.outbox.oldest("audit", 1, decode_audit)
        if not batches:
            return 0
        number, (key, entries) = batches[0]
        if key and not self.keyed:
            key = ""
        self._send(entries, link, key)
        self.outbox.remove("audit", [number])
        return len(entries)

    def pending(self) -> int:
        """
        How many audit entries wait in the outbox, not yet in the chain.
        """
        return self.outbox.pending("audit")

    def query(self, tenant_id: str, start: datetime, end: datetime) -> list[AuditEntry]:
        """
        The primary's entries of the tenant in ``[start, end]``.
        """
        return self.primary.query(tenant_id, start, end)

    def walk(
        self,
        visit: Callable[
            [ChainLink, ChainLink, Iterator[tuple[int, AuditEntry | None]]], T
        ],
    ) -> T:
        """
        Walk the primary's chain (see
        `zerfoo_cloud.stores.protocols.ChainedAuditStore.walk`).
        """
        return self.primary.walk(visit)

    def purge(self, before: datetime) -> int:
        """
        Purge the primary's chain (see
        `zerfoo_cloud.stores.protocols.ChainedAuditStore.purge`).
        """
        return self.primary.purge(before)

    def close(self) -> None:
        """
        Stop draining into the primary and close it; what waits stays in
        the outbox (its owner closes it).
        """
        self.outbox.detach(self)
        self.primary.close()

    def __repr__(self) -> str:
        keyed = "keyed" if self.keyed else "unkeyed"
        return f"<OutboxAuditStore {type(self.primary).__name__} {keyed} via {self.outbox!r}>"
