"""
`TokenMeter`: one billing record (and usage event) per finished request.

The meter checks and queues each record; a background writer commits the
queue in batches. See the package docstring and ``docs/metering.md``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from zerfoo_cloud._clock import utc_stamp, wire_stamp
from zerfoo_cloud._queued_writing import QueuedWriting, WriterTuning
from zerfoo_cloud._writer import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_PENDING,
    DEFAULT_RETRY_INTERVAL,
    BatchWriter,
)
from zerfoo_cloud.billing_records import (
    SUMMARY_KEYS,
    BillingRecord,
    UsageSummary,
    _check_by,
    _check_fields,
    _check_money,
    _utc,
    new_request_id,
    summarize,
)
from zerfoo_cloud.errors import UnpricedModelError
from zerfoo_cloud.metering.events import UsageEvent
from zerfoo_cloud.metering.usage_events import Recipient, UsageEvents
from zerfoo_cloud.stores.protocols import (
    CommittingBillingStore,
    SummarizingBillingStore,
)

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.metering.events import UsageRecorder
    from zerfoo_cloud.pricing import PriceTable
    from zerfoo_cloud.stores.protocols import BillingStore

__all__ = ["TokenMeter"]

# The logger keeps the name users configure: ``zerfoo_cloud.metering``.
_log = logging.getLogger("zerfoo_cloud.metering")


class TokenMeter(QueuedWriting):
    """
    Records the token use of requests in a `BillingStore`.

    **Guarantees.** `record` never waits for a disk: with a store that is not
    in memory it checks its arguments, builds the `BillingRecord` and queues
    it, and a background thread commits the queue in batches (group commit:
    with LMDB, one fsynced transaction per batch). `flush` returns only once
    every record made before the call is durable, so a ``SIGKILL`` right after
    it loses nothing; `close` flushes. A store that fails (a full disk or
    map, an I/O error) loses nothing either: the records stay queued and are
    retried every *retry_interval* seconds and on every `flush`, which raises
    `StoreError` (`StoreFullError` for a full disk or map) until they are
    written. Records still queued when the process is killed before a flush
    are lost; those still queued at a normal exit are written then.

    With an in-memory store (one whose ``in_memory`` attribute is true) the
    record is stored at once, in the caller's thread.

    Usage events go to *recorder* from another background thread, never from
    the caller's (`usage_events`); a recorder that raises is logged (its
    type and the exception's type only, never a message that could hold a
    secret) and counted in `recorder_failures`, and never affects billing.
    `flush` also waits until the recorder was handed every earlier event.

    A store may commit the batches itself
    (`zerfoo_cloud.stores.protocols.CommittingBillingStore`): an LMDB store
    set opened with ``writer_process=True`` commits them from a writer
    process, with the guarantees above (see
    `zerfoo_cloud.stores.lmdb.LMDBStores.open`); `close` then stops that
    process.

    **Costs.** With *prices*, each record's cost is computed once, when the
    record is made, at the price in force at its timestamp
    (`zerfoo_cloud.pricing.PriceTable.cost_of`), and stored in it with the
    table's currency; a later price change (a new table) never touches a
    record made before it. A model the table cannot price (no price of its
    own and no default) is still recorded, with cost 0 and no currency, so
    that no use is lost: it is logged and counted in `unpriced_records`
    (the HTTP layer refuses such models before the app runs, so only a
    direct caller can make one). A record naming no model (``""``: a
    request that used none) without a default price is unpriced too, and
    neither logged nor counted.

    Args:
        store: where billing records go.
        recorder: also publish one `UsageEvent` per record here.
        prices: price every record with this table (``None``: records carry
            no cost).
        clock: the time source, Unix seconds.
        background: queue records for a writer thread (``True``) or store
            them in the caller's thread (``False``); ``None`` picks by store.
        max_batch: at most this many records per transaction.
        max_pending: at most this many records queued; past it `record`
            raises `StoreError` (the store has been failing that long).
        retry_interval: seconds between retries after a store failure.
        linger: seconds the writer thread lets records gather before it
            commits a batch (0 to `zerfoo_cloud._writer.MAX_LINGER`); by
            default 0.005, or the store's committer's (0.05 with the LMDB
            writer process). Longer means fewer, larger commits; records
            not yet flushed wait that much longer to become durable.
            `flush`, `close` and the durable mode of
            `zerfoo_cloud.CloudServer` never wait for it.

    Raises:
        InvalidConfigError: a bad option.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        store: BillingStore,
        *,
        recorder: UsageRecorder | None = None,
        prices: PriceTable | None = None,
        clock: Clock = time.time,
        background: bool | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        linger: float | None = None,
    ) -> None:
        self.store: BillingStore = store
        self.recorder = recorder
        #: The price table records are priced with (``None``: no cost).
        self.prices = prices
        self._unpriced = 0
        self.clock = clock
        self._committer = (
            store.committer() if isinstance(store, CommittingBillingStore) else None
        )
        tuning = WriterTuning(
            background, max_batch, max_pending, retry_interval, linger
        )
        self._writer: BatchWriter[BillingRecord] = self._open_writer(
            ("token meter", "billing records"), store.add, tuning, _log
        )
        self._summarizer = store if isinstance(store, SummarizingBillingStore) else None
        self._recorder_failures = 0
        self._failures_lock = threading.Lock()
        self._events: UsageEvents | None = None
        if recorder is not None:
            self._events = UsageEvents(
                (Recipient(recorder, self._recorder_failed),),
                max_batch=max_batch,
                max_pending=max_pending,
                logger=_log,
            )
            self._writers = (self._writer, self._events.writer)

    @property
    def usage_events(self) -> UsageEvents | None:
        """
        The route of this meter's usage events to its recorder (``None``
        without one). `zerfoo_cloud.CloudServer` queues its own recorder's
        events on it too, so that one flush waits for both.
        """
        return self._events

    def record(
        self,
        tenant_id: str,
        input_tokens: int,
        output_tokens: int,
        *,
        model: str = "",
        request_id: str | None = None,
        key_id: str = "",
    ) -> BillingRecord:
        """
        Record one request's tokens and return the billing record, priced
        when the meter has a price table (see the class docstring).
        *key_id* names the API key that made the request.

        The record is queued for the writer thread (see the class docstring);
        call `flush` to wait until it is durable. Pass the request's own id
        as *request_id* when a retry could record it again: a store keeps one
        record per id.

        Raises:
            InvalidConfigError: an argument is out of range (see
                `BillingRecord`); nothing was recorded.
            StoreError: nothing was recorded because the meter is closed, or
                because *max_pending* records are already waiting for a
                failing store (or, for an in-memory store, it failed).
        """
        record = self._queue(
            tenant_id,
            input_tokens,
            output_tokens,
            model,
            request_id,
            key_id,
            fields=False,
        )
        assert record is not None
        return record

    def _queue(  # noqa: PLR0917 - the fields of one record
        self,
        tenant_id: str,
        input_tokens: int,
        output_tokens: int,
        model: str,
        request_id: str | None,
        key_id: str,
        *,
        fields: bool,
    ) -> BillingRecord | None:
        # Check, stamp, price and queue one record (or only its fields, for
        # the writer process to make it from); publish its usage event.
        if request_id is None:
            request_id = new_request_id()
        now = self.clock()
        record = None
        cost, currency = 0, ""
        if fields:
            _check_fields(tenant_id, input_tokens, output_tokens, model, request_id)
            stamp = wire_stamp(now)
            if self.prices is not None:
                cost, currency = self._cost(
                    model, input_tokens, output_tokens, utc_stamp(stamp)
                )
            _check_money(cost, currency, key_id)
            # In BillingRecord's order.
            item: Any = (
                tenant_id,
                input_tokens,
                output_tokens,
                stamp,
                model,
                request_id,
                cost,
                currency,
                key_id,
            )
        else:
            when = datetime.fromtimestamp(now, timezone.utc)
            if self.prices is not None:
                _check_fields(tenant_id, input_tokens, output_tokens, model, request_id)
                cost, currency = self._cost(model, input_tokens, output_tokens, when)
            # The constructor checks the fields.
            record = BillingRecord(
                tenant_id,
                input_tokens,
                output_tokens,
                when,
                model,
                request_id,
                cost,
                currency,
                key_id,
            )
            item = record
        self._writer.submit(item)
        events = self._events
        if events is not None:
            events.publish(
                UsageEvent(
                    tenant_id, model, input_tokens, output_tokens, int(now), key_id
                )
            )
        return record

    def _cost(
        self, model: str, input_tokens: int, output_tokens: int, when: datetime
    ) -> tuple[int, str]:
        # The cost and currency of one record at *when*; (0, "") for a model
        # the table cannot price.
        prices = self.prices
        assert prices is not None
        try:
            return (
                prices.cost_of(model, input_tokens, output_tokens, when=when),
                prices.currency,
            )
        except UnpricedModelError:
            if not model:
                # A request that used no model (listing models, an upload).
                return 0, ""
            with self._failures_lock:
                self._unpriced += 1
                count = self._unpriced
            _log.warning(
                "model %r has no price: recorded without a cost; %d such records",
                model[:64],
                count,
            )
            return 0, ""

    @property
    def unpriced_records(self) -> int:
        """
        How many records this meter made without a cost because its price
        table had no price for their model (0 without a table).
        """
        return self._unpriced

    def record_request(
        self,
        tenant_id: str,
        input_tokens: int,
        output_tokens: int,
        *,
        model: str = "",
        request_id: str | None = None,
        key_id: str = "",
    ) -> None:
        """
        Record one request's tokens, as `record` does, without returning the
        billing record.

        With a store whose committer takes fields (the LMDB writer process)
        the record is checked here but made by the committer, which saves
        the caller about a microsecond: the HTTP layer calls this once per
        request.

        Raises:
            InvalidConfigError: as `record`; nothing was recorded.
            StoreError: as `record`.
        """
        self._queue(
            tenant_id,
            input_tokens,
            output_tokens,
            model,
            request_id,
            key_id,
            fields=self._fields,
        )

    def _recorder_failed(self, why: str) -> None:
        with self._failures_lock:
            self._recorder_failures += 1
            count = self._recorder_failures
        _log.warning(
            "usage recorder %s failed (%s); %d failures so far",
            type(self.recorder).__name__,
            why,
            count,
        )

    @property
    def recorder_failures(self) -> int:
        """
        How many usage events the recorder failed to take (raised, or its
        queue was full).
        """
        return self._recorder_failures

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> list[BillingRecord]:
        """
        Return the tenant's records with ``start <= timestamp <= end``, oldest first.

        First waits until this meter's queued records are written, so the
        result includes everything recorded through it. Records with the
        same timestamp are ordered by request id.

        Raises:
            InvalidConfigError: *start* or *end* is not an aware datetime.
        """
        start, end = _utc(start), _utc(end)
        self._settle()
        return self.store.query(tenant_id, start, end)

    def summary(
        self,
        tenant_id: str,
        start: datetime,
        end: datetime,
        by: str | Sequence[str] = SUMMARY_KEYS,
    ) -> list[UsageSummary]:
        """
        Total the tenant's tokens and requests in ``[start, end]``.

        Totals always equal the sums over `query` of the same range.

        Args:
            tenant_id: whose records.
            start: first instant included (aware datetime).
            end: last instant included (aware datetime).
            by: group by ``"model"``, by UTC ``"day"``, both (the default),
                or ``()`` for one grand total.

        Returns:
            One `UsageSummary` per group with records, ordered by day, then
            model; empty if there are none.

        Raises:
            InvalidConfigError: bad *by*, or *start*/*end* not aware.
        """
        keys = _check_by(by)
        start, end = _utc(start), _utc(end)
        self._settle()
        if self._summarizer is not None:
            return self._summarizer.summary(tenant_id, start, end, keys)
        return summarize(self.store.query(tenant_id, start, end), keys)
