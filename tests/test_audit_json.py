"""
The hand-written JSON of audit entries: the hashed and the stored forms equal
what `json.dumps` makes of `AuditEntry.to_dict`, for any entry.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import attrs
from hypothesis import given
from hypothesis import strategies as st

from zerfoo_cloud.audit import (
    AuditAction,
    AuditEntry,
    AuditResult,
    ChainLink,
    _Linker,
    entry_hash,
    entry_json,
    link_entry,
)

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_entries = st.builds(
    AuditEntry,
    st.one_of(
        st.none(),
        st.datetimes(timezones=st.just(timezone.utc)),
    ),
    _text,
    st.sampled_from(AuditAction),
    st.sampled_from(AuditResult),
    _text,
    st.integers(0, 999),
    _text,
    _text,
    _text,
    seq=st.integers(0, 2**63),
    prev_hash=_text,
    hash=_text,
)


def _reference(entry: AuditEntry) -> str:
    data = entry.to_dict()
    del data["hash"]
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@given(_entries)
def test_stored_form_is_the_sorted_json_of_to_dict(entry: AuditEntry) -> None:
    """`entry_json` is `to_dict` as compact sorted JSON and reads back as the same entry."""
    raw = entry_json(entry)
    expected = json.dumps(
        entry.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert raw == expected.encode()
    assert AuditEntry.from_dict(json.loads(raw)) == entry


@given(_entries, st.integers(0, 2**40), _text)
def test_hash_covers_the_canonical_form(entry: AuditEntry, seq: int, prev: str) -> None:
    """A linked entry's hash is SHA-256 of the sorted JSON of every field but the hash."""
    linked = link_entry(ChainLink(seq, prev), entry)
    expected = hashlib.sha256(_reference(linked).encode()).hexdigest()
    assert linked.hash == expected
    assert entry_hash(linked) == expected
    assert linked.seq == seq + 1
    assert linked.prev_hash == prev


@given(_entries, st.integers(0, 2**40), _text)
def test_linked_entry_is_the_constructors(
    entry: AuditEntry, seq: int, prev: str
) -> None:
    """link_entry() returns what AuditEntry() makes of the same fields and chain fields."""
    linked = link_entry(ChainLink(seq, prev), entry)
    expected = attrs.evolve(entry, seq=seq + 1, prev_hash=prev, hash=linked.hash)
    assert linked == expected
    assert type(linked) is AuditEntry
    assert linked.to_dict() == expected.to_dict()


def test_timestamp_is_written_to_the_microsecond() -> None:
    """The hand-written form writes the timestamp as to_dict does, to the microsecond."""
    stamp = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    entry = AuditEntry(stamp, "t")
    assert b'"timestamp":"2024-01-02T03:04:05.000006+00:00"' in entry_json(entry)


@given(_entries, st.integers(0, 2**40), _text)
def test_linker_stores_what_it_hashed(entry: AuditEntry, seq: int, prev: str) -> None:
    """The logger's linker returns the keyed link_entry result and its entry_json."""
    key = b"k" * 16
    linker = _Linker(key)
    linked, raw = linker.link_json(ChainLink(seq, prev), entry)
    assert linked == link_entry(ChainLink(seq, prev), entry, key)
    assert linker(ChainLink(seq, prev), entry) == linked
    assert raw == entry_json(linked)
    assert entry_hash(linked, key) == linked.hash
