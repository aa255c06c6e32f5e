"""
What only the LMDB billing and audit stores do: their key layout, corrupt
records, tampering with the file, full maps, and what lands on disk.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from zerfoo_cloud.audit import (
    AuditEntry,
    AuditLogger,
    AuditProblem,
    AuditResult,
    ChainLink,
    link_entry,
)
from zerfoo_cloud.errors import (
    AuditChainError,
    CorruptRecordError,
    InvalidConfigError,
    StoreError,
    StoreFullError,
)
from zerfoo_cloud.metering import BillingRecord, TokenMeter, summarize
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.lmdb import _audit as _lmdb_audit
from zerfoo_cloud.stores.lmdb._keys import TIME, tenant_prefix, time_key
from zerfoo_cloud.tenants import generate_api_key

pytestmark = pytest.mark.lmdb

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
SECRET = b"k" * 32


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[LMDBStores]:
    """A fresh LMDB store folder."""
    with LMDBStores.open(tmp_path / "db") as s:
        yield s


def _raw(stores: LMDBStores, db: str, fn: Callable[[Any, Any], object]) -> None:
    stores.durable.write(lambda txn: fn(txn, stores.durable.dbs[db]))


def _put(key: bytes, value: bytes, txn: Any, db: Any) -> None:
    txn.put(key, value, db=db)


def _billing_key(tenant: str, at: datetime, rid: str) -> bytes:
    prefix = tenant_prefix(tenant)
    assert prefix is not None
    return (
        time_key(prefix, (at - datetime(1970, 1, 1, tzinfo=timezone.utc)) // US)
        + rid.encode()
    )


def _logged(stores: LMDBStores, count: int) -> AuditLogger:
    audit = AuditLogger(stores.audit, secret=SECRET)
    for i in range(count):
        audit.log(AuditEntry(T0 + i * US, "acme", path=f"/{i}"))
    audit.flush()
    return audit


# -- billing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x01\x00", "value too short"),
        (b"\x07" + bytes(16), "unknown format 7"),
        (b"\x01" + bytes(16) + b"\xff", "invalid start byte"),
    ],
)
def test_corrupt_billing_record_is_named(
    stores: LMDBStores, value: bytes, reason: str
) -> None:
    """A record that cannot be decoded raises CorruptRecordError naming tenant, time and request id."""
    key = _billing_key("acme", T0, "req-1")
    _raw(stores, "billing", lambda txn, db: txn.put(key, value, db=db))
    with pytest.raises(CorruptRecordError, match=reason) as info:
        stores.billing.query("acme", T0, T0)
    assert info.value.key == f"acme/{T0.isoformat()}/req-1"
    assert info.value.store == "lmdb:billing"
    with pytest.raises(CorruptRecordError):
        stores.billing.summary("acme", T0, T0, ("model", "day"))


def test_records_written_before_costs_read_back_unpriced(stores: LMDBStores) -> None:
    """Bytes of the first format (no cost, currency or key id), written byte for byte, read back with the defaults; summaries agree."""
    old = struct.pack(">BQQ", 1, 7, 9) + "modèle".encode()
    key = _billing_key("acme", T0, "old-1")
    _raw(stores, "billing", lambda txn, db: txn.put(key, old, db=db))
    new = BillingRecord("acme", 1, 2, T0 + US, "modèle", "new-1", 1234, "USD", "k1")
    stores.billing.add([new])
    found = stores.billing.query("acme", T0, T0 + US)
    assert found == [BillingRecord("acme", 7, 9, T0, "modèle", "old-1"), new]
    assert (found[0].cost, found[0].currency, found[0].key_id) == (0, "", "")
    for by in (("model", "day"), ("model",), ()):
        assert stores.billing.summary("acme", T0, T0 + US, by) == summarize(found, by)


def test_unpriced_records_keep_the_first_format(stores: LMDBStores) -> None:
    """A record without cost, currency or key id is stored in the shorter first format; a priced one in the second."""
    stores.billing.add([BillingRecord("acme", 1, 2, T0, "m", "a")])
    stores.billing.add([BillingRecord("acme", 1, 2, T0 + US, "m", "b", 5, "EUR")])
    values: list[bytes] = []
    _raw(
        stores,
        "billing",
        lambda txn, db: values.extend(bytes(v) for _, v in txn.cursor(db=db)),
    )
    assert [v[0] for v in values] == [1, 2]
    assert len(values[0]) == 17 + 1
    assert len(values[1]) == 29 + 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x02" + bytes(27), "value too short"),
        (struct.pack(">BQQQ3sB", 2, 1, 1, 1, b"USD", 9) + b"k", "key id cut short"),
        (struct.pack(">BQQQ3sB", 2, 1, 1, 1, b"usd", 0), "currency"),
        (struct.pack(">BQQQ3sB", 2, 1, 1, 5, b"\0\0\0", 0), "needs its currency"),
        (struct.pack(">BQQQ3sB", 2, 1, 1, 1, b"USD", 1) + b"\x01", "key_id"),
    ],
)
def test_corrupt_priced_record_is_named(
    stores: LMDBStores, value: bytes, reason: str
) -> None:
    """A second-format value cut short or holding a field no record can hold raises CorruptRecordError."""
    key = _billing_key("acme", T0, "req-2")
    _raw(stores, "billing", lambda txn, db: txn.put(key, value, db=db))
    with pytest.raises(CorruptRecordError, match=reason) as info:
        stores.billing.query("acme", T0, T0)
    assert info.value.key == f"acme/{T0.isoformat()}/req-2"


def test_corrupt_key_is_named_by_its_bytes(stores: LMDBStores) -> None:
    """A key that is not of the store's layout is named in hex."""
    key = b"\x00\x02ac\x80\x00"
    _raw(stores, "billing", lambda txn, db: txn.put(key, b"\x01" + bytes(16), db=db))
    with pytest.raises(CorruptRecordError) as info:
        stores.billing.query("ac", T0 - timedelta(days=365 * 80), T0)
    assert info.value.key == key.hex()


def test_query_and_summary_read_only_the_range(stores: LMDBStores) -> None:
    """Corrupt records of other tenants or outside the range are never read: queries are range scans."""
    stores.billing.add([BillingRecord("acme", 1, 2, T0, "m", "good")])
    for key in (
        _billing_key("acme", T0 - US, "early"),
        _billing_key("acme", T0 + US, "late"),
        _billing_key("acm", T0, "other"),
        _billing_key("acmf", T0, "other"),
    ):
        _raw(stores, "billing", partial(_put, key, b"junk"))
    assert [r.request_id for r in stores.billing.query("acme", T0, T0)] == ["good"]
    (row,) = stores.billing.summary("acme", T0, T0, ("model",))
    assert (row.model, row.requests, row.total_tokens) == ("m", 1, 3)


def test_request_ids_stay_unique_after_reopening(tmp_path: Path) -> None:
    """A request id stored before a restart is still recognised after it."""
    record = BillingRecord("acme", 1, 2, T0, "m", "once")
    with LMDBStores.open(tmp_path / "db") as stores:
        assert stores.billing.add([record]) == 1
    with LMDBStores.open(tmp_path / "db") as stores:
        assert (
            stores.billing.add([BillingRecord("acme", 9, 9, T0 + US, "m", "once")]) == 0
        )
        assert stores.billing.query("acme", T0, T0 + US) == [record]


def test_naive_and_overlong_arguments(stores: LMDBStores) -> None:
    """Naive datetimes raise InvalidConfigError; an over-long tenant id simply has no records."""
    naive = datetime(2025, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(InvalidConfigError):
        stores.billing.query("acme", naive, T0)
    with pytest.raises(InvalidConfigError):
        stores.audit.query("acme", T0, naive)
    with pytest.raises(InvalidConfigError):
        stores.audit.purge(naive)
    assert stores.billing.query("x" * 300, T0, T0) == []
    assert stores.billing.summary("x" * 300, T0, T0, ()) == []
    assert stores.audit.query("x" * 300, T0, T0) == []


def test_full_map_raises_and_keeps_records_for_retry(tmp_path: Path) -> None:
    """A map at its size limit makes flush() raise StoreFullError; once it may grow, every record is written once."""
    small = 256 << 10
    with LMDBStores.open(tmp_path / "db", map_size=small, max_map_size=small) as stores:
        meter = TokenMeter(stores.billing, retry_interval=60)
        for i in range(3000):
            meter.record("acme", i, i, model="m" * 200, request_id=f"r{i}")
        with pytest.raises(StoreFullError, match="kept and retried"):
            meter.flush()
        assert 0 < meter.pending <= 3000
        assert isinstance(meter.error, StoreFullError)
        stores.durable.max_map_size = 64 << 20
        meter.flush()
        assert meter.pending == 0
        assert meter.error is None
        found = meter.query("acme", T0, datetime(2100, 1, 1, tzinfo=timezone.utc))
        assert sorted(r.request_id for r in found) == sorted(
            f"r{i}" for i in range(3000)
        )
        meter.close()


def test_full_map_refuses_records_past_max_pending(tmp_path: Path) -> None:
    """With the store full, record() keeps max_pending records and raises StoreError for the next."""
    small = 64 << 10
    with LMDBStores.open(tmp_path / "db", map_size=small, max_map_size=small) as stores:
        meter = TokenMeter(stores.billing, max_pending=500, retry_interval=60)
        for i in range(500):
            meter.record("acme", 1, 1, model="m" * 250, request_id=f"r{i}")
        with pytest.raises(StoreFullError):
            meter.flush()
        extra = 0
        while meter.pending < 500:  # a first small batch may have fitted
            meter.record("acme", 1, 1, request_id=f"extra{extra}")
            extra += 1
        with pytest.raises(StoreError, match="not recorded"):
            meter.record("acme", 1, 1)
        assert meter.pending == 500
        stores.durable.max_map_size = 64 << 20
        meter.close()
        assert meter.pending == 0


# -- audit ------------------------------------------------------------------


def _seq_key(seq: int) -> bytes:
    return TIME.pack(seq)


def _edit(txn: Any, db: Any) -> None:
    raw = txn.get(_seq_key(3), db=db)
    txn.put(_seq_key(3), raw.replace(b'"/2"', b'"/x"'), db=db)


def _delete_middle(txn: Any, db: Any) -> None:
    txn.delete(_seq_key(3), db=db)


def _swap(txn: Any, db: Any) -> None:
    a, b = txn.get(_seq_key(3), db=db), txn.get(_seq_key(4), db=db)
    txn.put(_seq_key(3), b, db=db)
    txn.put(_seq_key(4), a, db=db)


def _garble(txn: Any, db: Any) -> None:
    txn.put(_seq_key(3), b"{not json", db=db)


def _delete_last(txn: Any, db: Any) -> None:
    txn.delete(_seq_key(5), db=db)


def _append_copy(txn: Any, db: Any) -> None:
    txn.put(
        _seq_key(6), txn.get(_seq_key(5), db=db).replace(b'"seq":5', b'"seq":6'), db=db
    )


@pytest.mark.parametrize(
    ("tamper", "seq", "problem"),
    [
        (_edit, 3, AuditProblem.ALTERED),
        (_delete_middle, 3, AuditProblem.REMOVED),
        (_swap, 3, AuditProblem.REORDERED),
        (_garble, 3, AuditProblem.ALTERED),
        (_delete_last, 5, AuditProblem.REMOVED),
        (_append_copy, 6, AuditProblem.INSERTED),
    ],
)
def test_verify_finds_tampering_in_the_file(
    stores: LMDBStores,
    tamper: Callable[[Any, Any], None],
    seq: int,
    problem: AuditProblem,
) -> None:
    """Editing, deleting, swapping, garbling or adding raw entries is reported at the first bad position."""
    audit = _logged(stores, 5)
    assert audit.verify().ok
    _raw(stores, "audit", tamper)
    report = audit.verify()
    assert (report.ok, report.seq, report.problem) == (False, seq, problem)
    with pytest.raises(AuditChainError) as info:
        report.check()
    assert (info.value.seq, info.value.problem) == (seq, problem.value)
    audit.close()


def test_entry_added_past_the_head_is_noticed(stores: LMDBStores) -> None:
    """A well-formed entry written after the head by someone holding the secret is reported as inserted."""
    audit = _logged(stores, 3)
    (last,) = audit.query("acme", T0 + 2 * US, T0 + 2 * US)
    forged = link_entry(
        ChainLink(3, last.hash), AuditEntry(T0 + 3 * US, "acme"), SECRET
    )
    _raw(
        stores,
        "audit",
        partial(_put, _seq_key(4), json.dumps(forged.to_dict()).encode()),
    )
    report = audit.verify()
    assert (report.seq, report.problem, report.checked) == (4, AuditProblem.INSERTED, 4)
    audit.close()


def test_rewritten_head_is_noticed(stores: LMDBStores) -> None:
    """A head that does not match the last entry's hash is reported."""
    audit = _logged(stores, 3)
    _raw(
        stores,
        "audit_meta",
        lambda txn, db: txn.put(b"head", TIME.pack(3) + b"f" * 64, db=db),
    )
    report = audit.verify()
    assert (report.seq, report.problem) == (3, AuditProblem.ALTERED)
    audit.close()


def test_corrupt_meta_and_index_are_named(stores: LMDBStores) -> None:
    """A corrupt head, or an index entry whose entry is gone, raises CorruptRecordError."""
    audit = _logged(stores, 2)
    _raw(stores, "audit", lambda txn, db: txn.delete(_seq_key(1), db=db))
    with pytest.raises(CorruptRecordError, match="missing entry"):
        stores.audit.query("acme", T0, T0 + US)
    _raw(stores, "audit_meta", lambda txn, db: txn.put(b"head", b"\x00", db=db))
    with pytest.raises(CorruptRecordError, match="head"):
        audit.verify()
    audit.close()


def test_corrupt_entry_in_a_query_is_named(stores: LMDBStores) -> None:
    """An entry that cannot be decoded makes query() raise CorruptRecordError naming its seq."""
    audit = _logged(stores, 1)
    _raw(stores, "audit", lambda txn, db: txn.put(_seq_key(1), b"[]", db=db))
    with pytest.raises(CorruptRecordError, match="entry 1"):
        audit.query("acme", T0, T0)
    audit.close()


def test_append_needs_a_timestamp(stores: LMDBStores) -> None:
    """Appending an entry without a timestamp raises InvalidConfigError and stores nothing."""
    with pytest.raises(InvalidConfigError):
        stores.audit.append(AuditEntry(tenant_id="acme"))
    assert stores.audit.append_linked([], lambda prev, e: e) == []


def test_entry_past_the_head_blocks_appends(stores: LMDBStores) -> None:
    """An entry stored past the head is never overwritten: appending raises CorruptRecordError."""
    audit = _logged(stores, 1)
    _raw(stores, "audit", lambda txn, db: txn.put(_seq_key(2), b"{}", db=db))
    with pytest.raises(CorruptRecordError, match="past the head"):
        stores.audit.append(AuditEntry(T0, "acme"))
    audit.close()


def test_purge_works_in_chunks(
    stores: LMDBStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purge larger than one chunk drops everything asked for and the rest verifies."""
    monkeypatch.setattr(_lmdb_audit, "PURGE_CHUNK", 3)
    audit = _logged(stores, 10)
    assert audit.purge(T0 + 7 * US) == 7
    report = audit.verify()
    assert report.ok
    assert (report.anchor.seq, report.checked) == (7, 3)
    assert audit.purge(T0 + 100 * US) == 3
    assert audit.purge(T0 + 100 * US) == 0
    audit.close()


def test_no_key_reaches_the_file(tmp_path: Path) -> None:
    """An entry built from a request carrying the API key everywhere stores no trace of the key."""
    key = generate_api_key()
    encoded = "".join(f"%{b:02X}" for b in key.encode())
    request = {
        "method": "post",
        "target": (
            f"https://user:{key}@api.example.com/v1/{key}/chat;api_key={key}"
            f"/{encoded}/completions?api_key={key}#{key}"
        ),
        "headers": [
            ("authorization", f"Bearer {key}"),
            ("x-api-key", key),
            ("cookie", f"key={key}"),
        ],
        "body": f'{{"model": "llama", "api_key": "{key}"}}',
        "client": (f"{key}", 443),
        "model": f"llama {key}",
    }
    entry = AuditEntry(
        tenant_id="acme",
        result=AuditResult.UNAUTHORIZED,
        resource=str(request["model"]),
        status_code=401,
        method=str(request["method"]),
        path=str(request["target"]),
        remote_addr=str(request["client"][0]),
    )
    with LMDBStores.open(tmp_path / "db") as stores:
        audit = AuditLogger(stores.audit, secret=SECRET)
        audit.log(entry)
        audit.flush()
        (stored,) = audit.query("acme", T0, datetime(2100, 1, 1, tzinfo=timezone.utc))
        audit.close()
    assert stored.path == "/v1/<redacted>/chat/<redacted>/completions"
    assert stored.resource == "llama <redacted>"
    assert stored.remote_addr == "<redacted>"
    assert stored.method == "POST"
    data = b"".join(p.read_bytes() for p in (tmp_path / "db").rglob("*.mdb"))
    secret_part = key.split("-", 1)[1]
    for needle in (key, secret_part, encoded, secret_part[:16]):
        assert needle.encode() not in data
