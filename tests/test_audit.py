"""
AuditLogger and AuditEntry: what entries may hold, the hash chain, verify,
purge, and the background writer.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_metering import FAIL_UNTIL_TOLD
from zerfoo_cloud.audit import (
    GENESIS,
    INVALID,
    MAX_PATH_LENGTH,
    MAX_RESOURCE_LENGTH,
    MAX_TENANT_ID_BYTES,
    MIN_SECRET_BYTES,
    REDACTED,
    AuditAction,
    AuditEntry,
    AuditLogger,
    AuditProblem,
    AuditResult,
    ChainLink,
    entry_hash,
    strip_query,
    verify_chain,
)
from zerfoo_cloud.errors import AuditChainError, InvalidConfigError, StoreError
from zerfoo_cloud.stores.lmdb import LMDBStores
from zerfoo_cloud.stores.memory import MemoryAuditStore
from zerfoo_cloud.tenants import generate_api_key

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
SECRET = b"0123456789abcdef-audit"
KEY = generate_api_key()
EVER = (
    datetime(2000, 1, 1, tzinfo=timezone.utc),
    datetime(2100, 1, 1, tzinfo=timezone.utc),
)


# -- what an entry may hold -------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/v1/chat?api_key=x#frag", "/v1/chat"),
        ("/v1/models#a?b", "/v1/models"),
        (f"https://u:{KEY}@host:8443/v1/x?k={KEY}", "/v1/x"),
        (f"http://{KEY}@host", "/"),
        ("//evil.example/v1/x", "/v1/x"),
        (f"/v1/{KEY}/chat", f"/v1/{REDACTED}/chat"),
        (f"/v1/key={KEY}", f"/v1/{REDACTED}"),
        ("/v1/" + "".join(f"%{b:02X}" for b in KEY.encode()), f"/v1/{REDACTED}"),
        (f"/v1/chat;jsessionid={KEY}/x", "/v1/chat/x"),
        ("/v1/sk-" + "A" * 48, f"/v1/{REDACTED}"),
        ("/v1/task-list-of-many-things-here", "/v1/task-list-of-many-things-here"),
        ("/v1/zc-short", "/v1/zc-short"),
        ("/a\x00b\x1f", "/a\ufffdb\ufffd"),
        ("/;a/;b//c", "/"),
        ("", ""),
    ],
)
def test_paths_are_cleaned(raw: str, clean: str) -> None:
    """Query strings, fragments, authorities, parameters and key-shaped segments never stay in a path."""
    assert AuditEntry(path=raw).path == clean


def test_strip_query() -> None:
    """strip_query() drops the query string and the fragment."""
    assert strip_query("/a?b#c") == "/a"
    assert strip_query("/a#b?c") == "/a"


def test_path_at_and_past_its_length_limit() -> None:
    """A path of MAX_PATH_LENGTH characters is kept; a longer one is cut to that length."""
    exact = "/" + "a" * (MAX_PATH_LENGTH - 1)
    assert AuditEntry(path=exact).path == exact
    cut = AuditEntry(path=exact + "b").path
    assert len(cut) == MAX_PATH_LENGTH
    assert cut.endswith("…")


def test_resource_at_and_past_its_length_limit() -> None:
    """A resource of MAX_RESOURCE_LENGTH characters is kept; a longer one is cut."""
    exact = "r" * MAX_RESOURCE_LENGTH
    assert AuditEntry(resource=exact).resource == exact
    assert len(AuditEntry(resource=exact + "r").resource) == MAX_RESOURCE_LENGTH


@pytest.mark.parametrize(
    ("field", "raw", "clean"),
    [
        ("resource", f"model {KEY}", f"model {REDACTED}"),
        ("resource", "model%20" + KEY.replace("-", "%2D"), REDACTED),
        ("remote_addr", KEY, REDACTED),
        ("remote_addr", "10.0.0.1", "10.0.0.1"),
        ("remote_addr", "[2001:db8::1]:443", "[2001:db8::1]:443"),
        ("remote_addr", "testclient", "testclient"),
        ("remote_addr", "evil host", INVALID),
        ("remote_addr", REDACTED, REDACTED),
        ("remote_addr", INVALID, INVALID),
        ("method", "get", "GET"),
        ("method", "GET /x", INVALID),
        ("method", "M" * 17, INVALID),
    ],
)
def test_fields_are_cleaned(field: str, raw: str, clean: str) -> None:
    """Resources, addresses and methods lose key-shaped text and invalid values."""
    kwargs: dict[str, Any] = {field: raw}
    assert getattr(AuditEntry(**kwargs), field) == clean


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status_code": 1000},
        {"status_code": -1},
        {"status_code": True},
        {"path": b"/x"},
        {"tenant_id": 3},
        {"timestamp": datetime(2025, 1, 1)},  # noqa: DTZ001 - the point of the test
        {"seq": -1},
        {"hash": None},
    ],
)
def test_bad_fields_raise(kwargs: dict[str, object]) -> None:
    """Fields of the wrong type or range raise InvalidConfigError."""
    with pytest.raises(InvalidConfigError):
        AuditEntry(**kwargs)  # type: ignore[arg-type]


def test_status_code_limits() -> None:
    """Status codes 0 and 999 are accepted."""
    assert AuditEntry(status_code=999).status_code == 999
    assert AuditEntry(status_code=0).status_code == 0


_texts = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda a, b, sep: a + sep + KEY + b,
        st.text(max_size=40),
        st.text(max_size=40),
        st.sampled_from(["/", "?", "=", ";", "//", ":", "@", " ", "#"]),
    ),
)


@given(path=_texts, resource=_texts, addr=_texts, method=_texts)
def test_cleaning_is_idempotent_and_leaves_no_key(
    path: str, resource: str, addr: str, method: str
) -> None:
    """Cleaning a clean entry changes nothing, and no cleaned field holds a key."""
    entry = AuditEntry(path=path, resource=resource, remote_addr=addr, method=method)
    assert attrs.evolve(entry) == entry
    assert AuditEntry.from_dict(entry.to_dict()) == entry
    for text in (entry.path, entry.resource, entry.remote_addr, entry.method):
        assert KEY not in text
        assert KEY[3:20] not in text


def test_from_dict_rejects_other_data() -> None:
    """from_dict() raises ValueError for data that is not an entry."""
    good = AuditEntry(T0).to_dict()
    bad: object
    for bad in (
        [],
        {**good, "extra": 1},
        {**good, "timestamp": 7},
        {**good, "action": "x"},
    ):
        with pytest.raises(ValueError, match="not an audit entry"):
            AuditEntry.from_dict(bad)


# -- the logger -------------------------------------------------------------


def test_log_stamps_and_returns_the_entry_without_chain_fields() -> None:
    """log() stamps an entry without timestamp and ignores chain fields set by the caller."""
    store = MemoryAuditStore()
    logger = AuditLogger(store, clock=lambda: T0.timestamp())
    forged = AuditEntry(tenant_id="acme", seq=9, prev_hash="x", hash="y")
    logged = logger.log(forged)
    assert logged == AuditEntry(T0, "acme")
    (stored,) = logger.query("acme", T0, T0)
    assert (stored.seq, stored.prev_hash) == (1, GENESIS.hash)
    assert stored.unchained() == logged
    kept = AuditEntry(T0 - US, "acme")
    assert logger.log(kept) is kept


_fields = st.fixed_dictionaries(
    {
        "tenant_id": st.one_of(
            _texts, st.just("é" * (MAX_TENANT_ID_BYTES // 2)), st.integers()
        ),
        "action": st.sampled_from(list(AuditAction) + [a.value for a in AuditAction]),
        "result": st.sampled_from(
            [*AuditResult, *(r.value for r in AuditResult), "nonsense"]
        ),
        "resource": _texts,
        "status_code": st.one_of(st.integers(-2, 1001), st.booleans()),
        "method": _texts,
        "path": _texts,
        "remote_addr": _texts,
    }
)


@given(fields=_fields)
def test_log_request_is_log_of_the_same_entry(fields: dict[str, Any]) -> None:
    """log_request() stores what log(AuditEntry(...)) would, or raises the same error."""
    slow = AuditLogger(MemoryAuditStore(), clock=lambda: T0.timestamp())
    fast = AuditLogger(MemoryAuditStore(), clock=lambda: T0.timestamp())
    tenant_id, action, result = fields["tenant_id"], fields["action"], fields["result"]
    rest = {
        k: v for k, v in fields.items() if k not in {"tenant_id", "action", "result"}
    }
    try:
        expected = slow.log(AuditEntry(None, tenant_id, action, result, **rest))
    except (InvalidConfigError, ValueError) as exc:
        with pytest.raises(type(exc)):
            fast.log_request(tenant_id, action, result, **rest)
        return
    fast.log_request(tenant_id, action, result, **rest)
    assert fast.query(expected.tenant_id, *EVER) == slow.query(
        expected.tenant_id, *EVER
    )


def test_writer_process_log_request_stores_what_log_stores(tmp_path: Path) -> None:
    """Entries queued as fields for the writer process are stored as log() stores them, cleaning included."""
    requests = [
        ("acme", AuditAction.INFERENCE, AuditResult.SUCCESS, "toy-1", 200, "POST"),
        ("acme", AuditAction.AUTH, AuditResult.UNAUTHORIZED, "/v1/x", 401, "get"),
        (
            "acme",
            AuditAction.INFERENCE,
            AuditResult.ERROR,
            "m\ud800",
            999,
            "BAD METHOD",
        ),
        ("é" * (MAX_TENANT_ID_BYTES // 2), AuditAction.AUTH, "denied", "r", 0, "PUT"),
    ]
    paths = [f"/v1/chat?key={KEY}", f"/v1/{KEY}/x", "/v1/\x00\ud800", "/"]
    results = []
    for writer_process in (True, False):
        stores = LMDBStores.open(
            tmp_path / str(writer_process), writer_process=writer_process
        )
        logger = AuditLogger(stores.audit, secret=SECRET, clock=lambda: T0.timestamp())
        try:
            for (tenant, action, result, resource, status, method), path in zip(
                requests, paths, strict=True
            ):
                logger.log_request(
                    tenant,
                    action,
                    result,  # type: ignore[arg-type]
                    resource=resource,
                    status_code=status,
                    method=method,
                    path=path,
                    remote_addr="10.0.0.1",
                )
            assert logger.verify().ok
            results.append(
                [e for t in ("acme", "é" * 128) for e in logger.query(t, *EVER)]
            )
        finally:
            logger.close()
            stores.close()
    assert len(results[0]) == len(requests)
    assert [e.unchained() for e in results[0]] == [e.unchained() for e in results[1]]
    assert all(KEY not in e.path for e in results[0])


def test_tenant_id_at_and_past_its_limit() -> None:
    """A tenant id of MAX_TENANT_ID_BYTES bytes is logged; one more byte raises InvalidConfigError."""
    logger = AuditLogger(MemoryAuditStore())
    logger.log(AuditEntry(T0, "é" * (MAX_TENANT_ID_BYTES // 2)))
    with pytest.raises(InvalidConfigError):
        logger.log(AuditEntry(T0, "é" * (MAX_TENANT_ID_BYTES // 2) + "a"))
    with pytest.raises(InvalidConfigError):
        logger.log("not an entry")  # type: ignore[arg-type]


def test_secret_at_and_past_its_limit() -> None:
    """A secret of MIN_SECRET_BYTES bytes works; one byte less raises; the secret is never shown."""
    logger = AuditLogger(MemoryAuditStore(), secret="s" * MIN_SECRET_BYTES)
    assert "s" * MIN_SECRET_BYTES not in repr(logger)
    assert "keyed" in repr(logger)
    with pytest.raises(InvalidConfigError) as info:
        AuditLogger(MemoryAuditStore(), secret=b"s" * (MIN_SECRET_BYTES - 1))
    assert info.value.field == "secret"


def test_verify_needs_the_same_secret() -> None:
    """A chain verifies with its own secret and shows as altered with another or none."""
    store = MemoryAuditStore()
    logger = AuditLogger(store, secret=SECRET)
    for _ in range(3):
        logger.log(AuditEntry(T0, "acme"))
    assert logger.verify().ok
    for other in (None, b"another secret 123"):
        report = AuditLogger(store, secret=other).verify()
        assert (report.ok, report.seq, report.problem) == (
            False,
            1,
            AuditProblem.ALTERED,
        )
    assert entry_hash(store.all()[0], SECRET) == store.all()[0].hash


def test_check_raises_audit_chain_error() -> None:
    """check() does nothing for an intact log and raises AuditChainError for a broken one."""
    store = MemoryAuditStore()
    logger = AuditLogger(store)
    logger.log(AuditEntry(T0, "acme"))
    logger.verify().check()
    store._entries.clear()
    report = logger.verify()
    with pytest.raises(
        AuditChainError, match="audit entry 1 to 1 \\(the head\\) are missing"
    ):
        report.check()


def test_purge_needs_an_aware_cutoff() -> None:
    """purge() with a naive datetime raises InvalidConfigError."""
    logger = AuditLogger(MemoryAuditStore())
    with pytest.raises(InvalidConfigError):
        logger.purge(datetime(2025, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(InvalidConfigError):
        logger.query("acme", T0, None)  # type: ignore[arg-type]


def test_purged_log_still_verifies_and_grows() -> None:
    """After purge() the rest verifies from the anchor and new entries extend it."""
    logger = AuditLogger(MemoryAuditStore(), secret=SECRET)
    for i in range(6):
        logger.log(AuditEntry(T0 + i * US, "acme"))
    assert logger.purge(T0 + 4 * US) == 4
    logger.log(AuditEntry(T0 + 9 * US, "acme"))
    report = logger.verify()
    assert report.ok
    assert (report.anchor.seq, report.head.seq, report.checked) == (4, 7, 3)


_EDITS: dict[str, Callable[[AuditEntry], object]] = {
    "tenant_id": lambda e: e.tenant_id + "x",
    "path": lambda e: e.path + "x",
    "status_code": lambda e: (e.status_code + 1) % 1000,
    "result": lambda e: AuditResult.DENIED,
    "timestamp": lambda e: (e.timestamp or T0) + US,
    "seq": lambda e: e.seq + 1,
    "prev_hash": lambda e: "f" * 64,
    "hash": lambda e: "e" * 64,
}


@pytest.mark.parametrize("secret", [SECRET, None], ids=["keyed", "unkeyed"])
@given(n=st.integers(1, 8), data=st.data())
def test_chain_detects_any_single_change(
    secret: bytes | None, n: int, data: st.DataObject
) -> None:
    """Any single edit, deletion, insertion, swap or copy is reported at the first position it changed."""
    store = MemoryAuditStore()
    logger = AuditLogger(store, secret=secret)
    for i in range(n):
        logger.log(AuditEntry(T0 + i * US, "acme", path=f"/{i}", status_code=200))
    assert logger.verify().ok
    original = store.all()
    entries = store._entries
    kind = data.draw(st.sampled_from(["edit", "delete", "insert", "swap", "copy"]))
    if kind == "edit":
        i = data.draw(st.integers(0, n - 1))
        field = data.draw(st.sampled_from(sorted(_EDITS)))
        change: dict[str, Any] = {field: _EDITS[field](entries[i])}
        entries[i] = attrs.evolve(entries[i], **change)
    elif kind == "delete":
        del entries[data.draw(st.integers(0, n - 1))]
    elif kind == "insert":
        forged = AuditEntry(
            T0,
            "acme",
            path="/forged",
            seq=data.draw(st.integers(0, n + 2)),
            prev_hash=data.draw(
                st.sampled_from([e.hash for e in original] + ["0" * 64])
            ),
            hash=data.draw(st.text("0123456789abcdef", min_size=64, max_size=64)),
        )
        entries.insert(data.draw(st.integers(0, n)), forged)
    elif kind == "swap":
        i = data.draw(st.integers(0, n - 1))
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
        entries[i], entries[j] = entries[j], entries[i]
    else:
        entries.insert(
            data.draw(st.integers(0, n)), original[data.draw(st.integers(0, n - 1))]
        )
    first = next(
        (k for k, (a, b) in enumerate(zip(entries, original, strict=False)) if a != b),
        min(len(entries), len(original)),
    )
    report = logger.verify()
    assert not report.ok
    assert report.seq == first + 1, report.message
    assert report.checked == first


def test_verify_chain_on_an_empty_log() -> None:
    """An empty log whose head is its anchor is intact."""
    assert verify_chain(GENESIS, GENESIS, []).ok
    anchor = ChainLink(5, "a" * 64)
    assert verify_chain(anchor, anchor, iter([])).ok


# -- background writing -----------------------------------------------------


class FlakyChainStore(MemoryAuditStore):
    """A chained memory store that does not say it is in memory and fails on demand."""

    in_memory = False

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0

    def append_linked(
        self,
        entries: Sequence[AuditEntry],
        link: Callable[[ChainLink, AuditEntry], AuditEntry],
    ) -> builtins.list[AuditEntry]:
        if self.fail:
            self.fail -= 1
            raise OSError("no space")
        return super().append_linked(entries, link)


def test_failing_store_keeps_entries_and_the_chain_stays_whole() -> None:
    """A store failure makes flush() raise; after recovery every entry is stored once, in one chain."""
    store = FlakyChainStore()
    logger = AuditLogger(store, secret=SECRET, retry_interval=60)
    store.fail = FAIL_UNTIL_TOLD
    for i in range(20):
        logger.log(AuditEntry(T0, "acme", path=f"/{i}"))
    with pytest.raises(StoreError, match="audit entries"):
        logger.flush()
    assert logger.pending == 20
    assert logger.error is not None
    store.fail = 0
    asyncio.run(logger.aflush())
    assert [e.path for e in store.all()] == [f"/{i}" for i in range(20)]
    assert logger.verify().ok
    logger.close()
    with pytest.raises(StoreError, match="closed"):
        logger.log(AuditEntry(T0, "acme"))


class PlainStore:
    """A third-party audit store with append, query and close only, failing on demand."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []
        self.fail_at: int | None = None

    def append(self, entry: AuditEntry) -> AuditEntry:
        if self.fail_at == len(self.entries):
            self.fail_at = None
            raise ConnectionError("down")
        self.entries.append(entry)
        return entry

    def query(self, tenant_id: str, start: datetime, end: datetime) -> list[AuditEntry]:
        return [e for e in self.entries if e.tenant_id == tenant_id]

    def close(self) -> None:
        pass


def test_plain_store_retries_only_what_failed() -> None:
    """With a store that appends one entry at a time, a failure half-way retries only the rest."""
    store = PlainStore()
    store.fail_at = 3
    with AuditLogger(store, retry_interval=60) as logger:
        for i in range(6):
            logger.log(AuditEntry(T0, "acme", path=f"/{i}"))
        try:
            logger.flush()
        except StoreError:
            logger.flush()
        assert [e.path for e in store.entries] == [f"/{i}" for i in range(6)]
        assert all(e.seq == 0 and e.hash == "" for e in store.entries)
        assert len(logger.query("acme", *EVER)) == 6
        with pytest.raises(InvalidConfigError, match="no hash chain"):
            logger.verify()
        with pytest.raises(InvalidConfigError, match="no hash chain"):
            logger.purge(T0)


@pytest.fixture(params=[False, True], ids=["thread", "writer-process"])
def lmdb_logger(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[AuditLogger]:
    """A keyed audit logger over a fresh LMDB store, writing from its thread or a writer process."""
    with LMDBStores.open(tmp_path / "db", writer_process=request.param) as stores:
        logger = AuditLogger(stores.audit, secret=SECRET, max_batch=7)
        yield logger
        logger.close()


def test_lmdb_logger_round_trip(lmdb_logger: AuditLogger) -> None:
    """Entries logged from threads into LMDB form one chain and are found by tenant and time."""

    def work(n: int) -> None:
        for i in range(50):
            lmdb_logger.log(
                AuditEntry(T0 + i * US, f"t{n}", AuditAction.CREATE, path=f"/{i}")
            )

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = lmdb_logger.verify()
    assert report.ok
    assert report.head.seq == 200
    found = lmdb_logger.query("t2", T0 + 10 * US, T0 + 19 * US)
    assert [e.path for e in found] == [f"/{i}" for i in range(10, 20)]
    assert lmdb_logger.purge(T0 + 25 * US) >= 25
    assert lmdb_logger.verify().ok
