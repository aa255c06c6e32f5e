"""
Committers through an LMDB writer process: what an `LMDBBillingStore` or
`LMDBAuditStore` of an `LMDBStores` opened with ``writer_process=True``
hands a `TokenMeter` or an `AuditLogger`
(`zerfoo_cloud.stores.protocols.BatchCommitter`).

Every committer of one `LMDBStores` sends its batches to the store set's one
`WriterProcess`, so billing records and audit entries that wait together
are committed in one transaction. `TokenMeter.record_request` and
`AuditLogger.log_request` queue checked fields (``takes_fields``) that the
child makes into records.

Billing records are stored once per request id, so sending a batch again is
harmless; audit batches carry the committer's random id and a batch number,
and the LMDB audit store skips a batch it committed already (see
`LMDBAuditStore.append_linked`).
"""

from __future__ import annotations

import operator
import os
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._fork import reset_in_child
from zerfoo_cloud.errors import StoreError, StoreFullError
from zerfoo_cloud.stores.lmdb._channel import CLOSE_TIMEOUT

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from zerfoo_cloud.stores.lmdb._channel import Exchange, WriterProcess

__all__ = [
    "WRITER_PROCESS_LINGER",
    "AuditCommit",
    "BillingCommit",
    "WriterProcessCommit",
]

#: The default linger of writers whose batches go to a writer process: every
#: batch costs the serving process a few thread wake-ups, so under load
#: fewer, larger batches leave it more time.
WRITER_PROCESS_LINGER = 0.05

_BILLING_FIELDS = operator.attrgetter(
    "tenant_id",
    "input_tokens",
    "output_tokens",
    "timestamp",
    "model",
    "request_id",
    "cost",
    "currency",
    "key_id",
)
# In `AuditEntry`'s positional order; the enums as their values (plain str),
# which pickle without a Python-level call.
_AUDIT_FIELDS = operator.attrgetter(
    "timestamp",
    "tenant_id",
    "action._value_",
    "result._value_",
    "resource",
    "status_code",
    "method",
    "path",
    "remote_addr",
)


def _as_fields(batch: list[Any], fields: Callable[[Any], tuple[Any, ...]]) -> list[Any]:
    # Records as their *fields*; items that are fields already (queued by
    # `TokenMeter.record_request` or `AuditLogger.log_request`) as they are.
    return [item if type(item) is tuple else fields(item) for item in batch]


def _answer(reply: Any, batch: list[Any]) -> None:
    # None: done. Else the store failed: drop what it kept, raise the rest.
    if reply is None:
        return
    full, message, durable = reply
    del batch[:durable]
    raise (StoreFullError if full else StoreError)(message)


class WriterProcessCommit:
    """
    A `BatchWriter` commit through the writer process of an `LMDBStores`:
    the `zerfoo_cloud.stores.protocols.LoopCommitter` a meter or a logger
    holds.
    """

    #: The default linger of a writer using it.
    linger = WRITER_PROCESS_LINGER
    #: It takes tuples of checked fields as well as records.
    takes_fields = True

    def __init__(self, channel: WriterProcess) -> None:
        self.channel = channel

    @property
    def pid(self) -> int | None:
        """
        The writer process's pid, ``None`` while none runs.
        """
        return self.channel.pid

    def close(self, timeout: float | None = None) -> None:
        """
        Stop the writer process (the store set's: the next commit of any
        of its committers starts a new one).
        """
        self.channel.close(CLOSE_TIMEOUT if timeout is None else timeout)

    def start_in_loop(
        self,
        batch: list[Any],
        loop: asyncio.AbstractEventLoop,
        done: Callable[[StoreError | None], None],
    ) -> Exchange | None:
        """
        Commit *batch* as a call would, driven by the event loop *loop*: the
        frame is written now and the loop reads the answer, then calls
        ``done(None)``, or ``done(error)`` with what is left of *batch* kept
        (as a call raising *error* would leave it). Returns ``None``, having
        done nothing, when only a call can do it now (no writer process
        yet, or one call under way).
        """
        raise NotImplementedError


class BillingCommit(WriterProcessCommit):
    """
    Store billing records in an `LMDBBillingStore` through its writer process.
    """

    def __call__(self, batch: list[Any]) -> None:
        _answer(self.channel.call((0, _as_fields(batch, _BILLING_FIELDS))), batch)

    def start_in_loop(
        self,
        batch: list[Any],
        loop: asyncio.AbstractEventLoop,
        done: Callable[[StoreError | None], None],
    ) -> Exchange | None:
        """
        `WriterProcessCommit.start_in_loop` for billing records.
        """
        items = _as_fields(batch, _BILLING_FIELDS)

        def answered(reply: Any, error: StoreError | None) -> None:
            if error is None:
                try:
                    _answer(reply, batch)
                except StoreError as exc:
                    error = exc
            done(error)

        return self.channel.start((0, items), loop, answered)


class AuditCommit(WriterProcessCommit):
    """
    Append audit entries to an `LMDBAuditStore`, chained with *secret*,
    through its writer process (each frame carries the secret, over the
    pipe only: never on a command line or in an environment).

    Batches are numbered; a batch whose fate is unknown (the child died
    before answering) is sent again with its number, ahead of anything new,
    and the store skips it if it was committed. A failed batch is retried
    from the front of the writer's queue, so its entries are the first of
    the next call.
    """

    def __init__(self, channel: WriterProcess, secret: bytes | None) -> None:
        super().__init__(channel)
        self._secret = secret  # never shown
        self._writer_id = os.urandom(16)
        self._number = 0
        self._unsure: tuple[int, int] | None = None
        reset_in_child(self)

    def __repr__(self) -> str:
        return f"<AuditCommit pid={self.pid}>"

    def __call__(self, batch: list[Any]) -> None:
        unsure = self._unsure
        if unsure is not None:
            self._send(unsure[0], batch, unsure[1])
            if not batch:
                return
        self._number += 1
        self._send(self._number, batch, len(batch))

    def _send(self, number: int, batch: list[Any], count: int) -> None:
        part = batch if count == len(batch) else batch[:count]
        try:
            reply = self.channel.call(
                (
                    number,
                    _as_fields(part, _AUDIT_FIELDS),
                    self._writer_id,
                    self._secret,
                )
            )
        except StoreError:
            self._unsure = (number, count)
            raise
        self._unsure = None
        _answer(reply, batch)
        del batch[:count]

    def start_in_loop(
        self,
        batch: list[Any],
        loop: asyncio.AbstractEventLoop,
        done: Callable[[StoreError | None], None],
    ) -> Exchange | None:
        """
        `WriterProcessCommit.start_in_loop` for audit entries; a batch of unknown
        fate is left to a call, which sends it again first.
        """
        if self._unsure is not None:
            return None
        number = self._number = self._number + 1
        count = len(batch)
        items = _as_fields(batch, _AUDIT_FIELDS)

        def answered(reply: Any, error: StoreError | None) -> None:
            if error is not None:
                self._unsure = (number, count)
                done(error)
                return
            self._unsure = None
            try:
                _answer(reply, batch)
            except StoreError as exc:
                done(exc)
                return
            del batch[:count]
            done(None)

        exchange = self.channel.start(
            (number, items, self._writer_id, self._secret), loop, answered
        )
        if exchange is None:
            self._number = number - 1
        return exchange

    def _forked(self) -> None:  # pragma: no cover - runs in forked children
        # A new writer: the parent's numbers are the parent's.
        self._writer_id = os.urandom(16)
        self._number = 0
        self._unsure = None
