"""
The LMDB billing store.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from zerfoo_cloud.billing_records import BillingRecord, UsageSummary, summary_rows
from zerfoo_cloud.errors import CorruptRecordError, InvalidConfigError
from zerfoo_cloud.stores.lmdb._commits import BillingCommit
from zerfoo_cloud.stores.lmdb._keys import (
    key_time,
    micros,
    scan,
    split_key,
    stamp,
    tenant_prefix,
    time_key,
)

if TYPE_CHECKING:
    from zerfoo_cloud.stores.lmdb._channel import WriterProcess
    from zerfoo_cloud.stores.lmdb._env import Environment

__all__ = ["LMDBBillingStore"]

# Format 1 (of records without a cost or key id): version, input tokens,
# output tokens; then the model (UTF-8). Format 2 (of the others): version, input tokens, output tokens,
# cost (micro-units), currency (three ASCII letters, or three zero bytes for
# none), the key id's length; then the key id (ASCII) and the model (UTF-8).
_VALUE_V1 = struct.Struct(">BQQ")
_VALUE = struct.Struct(">BQQQ3sB")
_FORMAT_V1 = 1
_FORMAT = 2
_NO_CURRENCY = b"\0\0\0"
_US_PER_DAY = 86_400_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_STORE = "lmdb:billing"


def _name(key: bytes) -> str:
    # How an operator finds the record: tenant/time/request id, or the raw key.
    try:
        tenant, us, rest = split_key(key)
        return f"{tenant}/{stamp(us).isoformat()}/{rest.decode('ascii')}"
    except (ValueError, OverflowError):
        return key.hex()


def _counts(key: bytes, value: bytes) -> tuple[int, int, int, bytes, int, int]:
    # (input, output, cost, currency, where the key id starts, where the
    # model starts) of a stored value of either format.
    try:
        if value[:1] == b"\x02":
            _, input_tokens, output_tokens, cost, currency, key_length = (
                _VALUE.unpack_from(value)
            )
            model_at = _VALUE.size + key_length
            if len(value) < model_at:
                msg = "key id cut short"
                raise struct.error(msg)  # noqa: TRY301 - one handler for every short value
            return (
                input_tokens,
                output_tokens,
                cost,
                currency,
                _VALUE.size,
                model_at,
            )
        version, input_tokens, output_tokens = _VALUE_V1.unpack_from(value)
    except struct.error as exc:
        raise CorruptRecordError(
            _STORE, _name(key), f"value too short ({exc})"
        ) from exc
    if version != _FORMAT_V1:
        raise CorruptRecordError(_STORE, _name(key), f"unknown format {version}")
    return input_tokens, output_tokens, 0, _NO_CURRENCY, _VALUE_V1.size, _VALUE_V1.size


class _KnownRequestIdError(Exception):
    pass


class LMDBBillingStore:
    """
    A `zerfoo_cloud.stores.protocols.SummarizingBillingStore` in LMDB, durable
    and shared by every process of the host. Get it from
    `zerfoo_cloud.stores.lmdb.LMDBStores`.

    Two databases, changed together in one transaction: ``billing`` maps
    (tenant, time, request id) to the token counts, cost, currency, key id
    and model (records stored before costs were recorded read back with
    cost 0, no currency and no key id), ordered so
    that a tenant's time range is one cursor scan; ``billing_ids`` maps each
    request id to its record's key, so a request id is stored once.
    Timestamps are kept to the microsecond.

    .. versionadded:: 0.1.0
    """

    def __init__(self, env: Environment) -> None:
        self._env = env

    # Looked up per call: in a forked child the environment reopens with
    # handles of its own.
    @property
    def _db(self) -> Any:
        return self._env.handles()["billing"]

    @property
    def _ids(self) -> Any:
        return self._env.handles()["billing_ids"]

    #: The store set's writer process (`LMDBStores.open` with
    #: ``writer_process=True``), or ``None``.
    writer_process: WriterProcess | None = None

    def committer(self) -> BillingCommit | None:
        """
        How a `zerfoo_cloud.metering.TokenMeter` commits its batches: through
        the store set's writer process if it has one, shared with the audit
        store's committers; else ``None`` (the meter calls `add` from its
        writer thread).
        """
        process = self.writer_process
        return None if process is None else BillingCommit(process)

    @staticmethod
    def _encode(records: Sequence[BillingRecord]) -> list[tuple[bytes, bytes, bytes]]:
        prefixes: dict[str, bytes] = {}
        pack = _VALUE.pack
        pack_v1 = _VALUE_V1.pack
        rows = []
        for record in records:
            tenant_id = record.tenant_id
            prefix = prefixes.get(tenant_id)
            if prefix is None:
                prefix = tenant_prefix(tenant_id)
                if prefix is None:  # pragma: no cover - BillingRecord checks it
                    msg = "tenant_id is too long"
                    raise InvalidConfigError(msg, field="tenant_id")
                prefixes[tenant_id] = prefix
            request_id = record.request_id.encode()
            key_id = record.key_id.encode()
            if record.cost or record.currency or key_id:
                head = pack(
                    _FORMAT,
                    record.input_tokens,
                    record.output_tokens,
                    record.cost,
                    record.currency.encode() or _NO_CURRENCY,
                    len(key_id),
                )
            else:
                # Nothing format 1 cannot say: twelve bytes fewer.
                head = pack_v1(_FORMAT_V1, record.input_tokens, record.output_tokens)
            rows.append(
                (
                    request_id,
                    time_key(prefix, micros(record.timestamp)) + request_id,
                    head + key_id + record.model.encode(),
                )
            )
        return rows

    def _decode(self, key: bytes, value: bytes) -> BillingRecord:
        input_tokens, output_tokens, cost, currency, key_at, model_at = _counts(
            key, value
        )
        try:
            tenant, us, request_id = split_key(key)
            return BillingRecord(
                tenant,
                input_tokens,
                output_tokens,
                stamp(us),
                value[model_at:].decode(),
                request_id.decode("ascii"),
                cost,
                "" if currency == _NO_CURRENCY else currency.decode("ascii"),
                value[key_at:model_at].decode("ascii"),
            )
        except (ValueError, OverflowError) as exc:
            raise CorruptRecordError(_STORE, _name(key), str(exc)) from exc

    def add(self, records: Sequence[BillingRecord]) -> int:
        """
        Store the records whose request id is new, in one fsynced transaction;
        return how many.
        """
        rows = self._encode(records)
        if not rows:
            return 0
        db = self._db
        ids = self._ids
        write_new = self._write_new(rows)

        def write_each(txn: Any) -> int:
            put = txn.put
            added = 0
            for request_id, key, value in rows:
                if put(request_id, key, db=ids, overwrite=False):
                    put(key, value, db=db)
                    added += 1
            return added

        try:
            return self._env.write(write_new)
        except _KnownRequestIdError:
            return self._env.write(write_each)

    def add_write(self, records: Sequence[BillingRecord]) -> Callable[[Any], int]:
        """
        The body of a write transaction that stores *records*, all of whose
        request ids must be new, and returns how many it stored: to commit
        them in one transaction with other writes (`Environment.write`).
        A request id already stored makes it raise, aborting the
        transaction; `add` then stores the rest.
        """
        return self._write_new(self._encode(records))

    def _write_new(
        self, rows: list[tuple[bytes, bytes, bytes]]
    ) -> Callable[[Any], int]:
        db = self._db
        ids = self._ids

        def write_new(txn: Any) -> int:
            # The common case, all request ids new: two bulk inserts. A known
            # id aborts the transaction and the careful path runs instead.
            _, added = txn.cursor(db=ids).putmulti(
                [(rid, key) for rid, key, _ in rows], overwrite=False
            )
            if added != len(rows):
                raise _KnownRequestIdError
            txn.cursor(db=db).putmulti([(key, value) for _, key, value in rows])
            return len(rows)

        return write_new

    def query(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> list[BillingRecord]:
        """
        Return the tenant's records in ``[start, end]``, oldest first (ties by
        request id): one range scan.

        Raises:
            InvalidConfigError: *start* or *end* is not aware.
            CorruptRecordError: a record in the range cannot be decoded (it
                is named).
        """
        first, last = micros(start), micros(end)
        prefix = tenant_prefix(tenant_id)
        if prefix is None:
            return []
        db = self._db
        decode = self._decode

        def read(txn: Any) -> list[BillingRecord]:
            return [decode(k, v) for k, v in scan(txn, db, prefix, first, last)]

        return self._env.read(read)

    def summary(
        self, tenant_id: str, start: datetime, end: datetime, by: Sequence[str]
    ) -> list[UsageSummary]:
        """
        Total the tenant's records in ``[start, end]`` by model and/or day,
        in one range scan that decodes only what it totals.
        """
        first, last = micros(start), micros(end)
        prefix = tenant_prefix(tenant_id)
        if prefix is None:
            return []
        by_model = "model" in by
        by_day = "day" in by
        at_time = len(prefix)
        db = self._db

        def read(
            txn: Any,
        ) -> dict[tuple[bytes | None, int | None, bytes], list[Any]]:
            totals: dict[tuple[bytes | None, int | None, bytes], list[Any]] = {}
            for key, value in scan(txn, db, prefix, first, last):
                input_tokens, output_tokens, cost, currency, _, model_at = _counts(
                    key, value
                )
                group = (
                    value[model_at:] if by_model else None,
                    _EPOCH_ORDINAL + key_time(key, at_time) // _US_PER_DAY
                    if by_day
                    else None,
                    currency,
                )
                t = totals.get(group)
                if t is None:
                    totals[group] = [input_tokens, output_tokens, 1, cost, key]
                else:
                    t[0] += input_tokens
                    t[1] += output_tokens
                    t[2] += 1
                    t[3] += cost
            return totals

        rows: dict[tuple[str | None, date | None, str], list[Any]] = {}
        for (model, day, currency), t in self._env.read(read).items():
            try:
                name = None if model is None else model.decode()
                code = "" if currency == _NO_CURRENCY else currency.decode("ascii")
            except UnicodeDecodeError as exc:
                raise CorruptRecordError(_STORE, _name(t[4]), str(exc)) from exc
            rows[name, None if day is None else date.fromordinal(day), code] = t
        return summary_rows(rows)

    def tenant_ids(self) -> list[str]:
        """
        Return the id of every tenant with at least one record, sorted by
        their stored form: one cursor jump per tenant, not a full scan.

        Raises:
            CorruptRecordError: a key that is not of the billing layout.
        """
        db = self._db

        def read(txn: Any) -> list[str]:
            found: list[str] = []
            with txn.cursor(db=db) as cursor:
                more = cursor.first()
                while more:
                    key = cursor.key()
                    try:
                        tenant, _, _ = split_key(key)
                    except ValueError as exc:
                        raise CorruptRecordError(_STORE, _name(key), str(exc)) from exc
                    found.append(tenant)
                    prefix = tenant_prefix(tenant)
                    assert prefix is not None  # it was stored
                    # Past every key of this tenant: its time field is all ones
                    # at most, and a request id never starts with 0xff.
                    more = cursor.set_range(prefix + b"\xff" * 9)
            return found

        return sorted(self._env.read(read))

    def close(self) -> None:
        """
        Nothing to release: `LMDBStores.close` closes the environment.
        """
