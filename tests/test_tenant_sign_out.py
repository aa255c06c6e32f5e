"""
The sign-out stamps of a tenant record: stored only when set (records
without them read and write as before), checked when read back, pruned
when no session can be that old, and bounded.
"""

from __future__ import annotations

import json

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.tenant_records import MAX_SIGNED_OUT_SUBJECTS, TenantRecord
from zerfoo_cloud.tenants import hash_api_key
from zerfoo_cloud.tenants.sign_out import SESSION_LIFETIME_BOUND, signed_out

NOW = 1_800_000_000.0


def _record(**kw: object) -> TenantRecord:
    return TenantRecord(
        id="acme",
        key_hash=hash_api_key("zc-acme"),
        rate_limit=1,
        token_budget=1,
        incarnation="i1",
        **kw,  # type: ignore[arg-type]
    )


def test_a_record_without_stamps_is_stored_as_before() -> None:
    """Neither stamp field appears in the stored form until set."""
    data = json.loads(_record().to_bytes())
    assert "sessions_not_before" not in data
    assert "subjects_not_before" not in data


def test_stamps_round_trip() -> None:
    """Both stamps come back from the stored form."""
    record = signed_out(signed_out(_record(), "alice", NOW), None, NOW + 1)
    record = signed_out(record, "bob", NOW + 2)
    assert TenantRecord.from_bytes(record.to_bytes()) == record
    assert record.sessions_valid_from("alice") == NOW + 1
    assert record.sessions_valid_from("bob") == NOW + 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sessions_not_before", "soon"),
        ("sessions_not_before", True),
        ("subjects_not_before", ["alice"]),
        ("subjects_not_before", {"alice": "soon"}),
    ],
)
def test_a_malformed_stored_stamp_is_refused(field: str, value: object) -> None:
    """A stored stamp of the wrong type is a ValueError naming the field."""
    data = json.loads(_record().to_bytes())
    data[field] = value
    with pytest.raises(ValueError, match="wrong type"):
        TenantRecord.from_bytes(json.dumps(data).encode())


def test_the_number_of_people_signed_out_one_by_one_is_bounded() -> None:
    """The limit is reached, one more is refused; stamps too old to matter go."""
    record = _record()
    for n in range(MAX_SIGNED_OUT_SUBJECTS):
        record = signed_out(record, f"user-{n}", NOW)
    assert len(record.subjects_not_before) == MAX_SIGNED_OUT_SUBJECTS
    assert (
        signed_out(record, "user-0", NOW + 1).sessions_valid_from("user-0") == NOW + 1
    )
    with pytest.raises(InvalidConfigError, match="sign the whole tenant out"):
        signed_out(record, "one-more", NOW)
    later = signed_out(record, "one-more", NOW + SESSION_LIFETIME_BOUND)
    assert later.subjects_not_before == (("one-more", NOW + SESSION_LIFETIME_BOUND),)


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["alice", "bob", "carol"])),
            st.floats(min_value=0, max_value=SESSION_LIFETIME_BOUND / 2),
        ),
        max_size=12,
    ),
    st.sampled_from(["alice", "bob", "carol", "dave"]),
)
def test_a_stamp_never_moves_back(
    steps: list[tuple[str | None, float]], subject: str
) -> None:
    """Whatever the order of sign-outs, the time a subject's sessions are
    valid from is the latest sign-out that applies to them."""
    record = _record()
    latest = 0.0
    for who, at in steps:
        record = signed_out(record, who, NOW + at)
        if who in {None, subject}:
            latest = max(latest, NOW + at)
    assert record.sessions_valid_from(subject) == latest
    assert TenantRecord.from_bytes(record.to_bytes()) == attrs.evolve(record)
