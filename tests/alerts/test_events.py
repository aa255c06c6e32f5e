"""
Alert events: deterministic ids, the JSON body, and data that must be
JSON-safe and free of secrets.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerfoo_cloud.alert_records.event import MAX_DATA_BYTES
from zerfoo_cloud.alerts import (
    EVENT_TYPES,
    AlertEvent,
    deterministic_event_id,
    random_event_id,
)
from zerfoo_cloud.errors import InvalidConfigError

parts = st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=20)), max_size=5)


@given(st.sampled_from(EVENT_TYPES), parts)
def test_the_same_parts_always_give_the_same_id(
    kind: str, values: list[object]
) -> None:
    """An id made twice of the same type and parts is the same, and is a valid id."""
    first = deterministic_event_id(kind, *values)
    assert first == deterministic_event_id(kind, *values)
    assert AlertEvent(first, kind, 0, "", {}).id == first


@given(parts, parts)
def test_different_parts_give_different_ids(a: list[object], b: list[object]) -> None:
    """Different parts (by their text) give different ids."""

    def text(values: list[object]) -> list[str]:
        return ["" if p is None else str(p) for p in values]

    if text(a) != text(b):
        assert deterministic_event_id("test", *a) != deterministic_event_id("test", *b)


def test_random_ids_differ() -> None:
    """Two one-off events get two ids."""
    assert random_event_id() != random_event_id()


def test_the_body_is_the_documented_json() -> None:
    """The body holds id, type, an ISO 8601 UTC timestamp, tenant_id and data."""
    event = AlertEvent(
        "evt_1", "key.created", 1_800_000_000.25, "acme", {"key_id": "k-1"}
    )
    assert orjson.loads(event.body()) == {
        "id": "evt_1",
        "type": "key.created",
        "timestamp": "2027-01-15T08:00:00.250000Z",
        "tenant_id": "acme",
        "data": {"key_id": "k-1"},
    }
    assert AlertEvent.from_stored(event.stored()) == event


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("type", {"type": "budget.nope"}),
        ("id", {"id": "has space"}),
        ("id", {"id": ""}),
        ("id", {"id": "x" * 101}),
        ("created_at", {"created_at": -1}),
        ("created_at", {"created_at": float(2**33)}),
        ("tenant_id", {"tenant_id": 3}),
        ("data", {"data": {"when": object()}}),
        ("data", {"data": {1: "x"}}),
        ("data", {"data": {"x": float("nan")}}),
        ("data", {"data": {"key": "zc-" + "A" * 40}}),
        ("data", {"data": {"nested": [{"k": "sk-" + "b" * 30}]}}),
        ("data", {"data": ["not", "a", "mapping"]}),
    ],
)
def test_a_malformed_event_is_refused_naming_the_field(
    field: str, kwargs: dict[str, object]
) -> None:
    """Bad ids, types, times, data (not JSON, or a key in it) are refused."""
    values: dict[str, object] = {
        "id": "evt_1",
        "type": "test",
        "created_at": 0,
        "tenant_id": "t",
        "data": {},
    }
    with pytest.raises(InvalidConfigError) as info:
        AlertEvent(**{**values, **kwargs})  # type: ignore[arg-type]
    assert info.value.field == field
    assert "zc-AAAA" not in str(info.value)


def test_data_at_its_size_limit_is_taken_and_a_byte_more_refused() -> None:
    """Data of exactly the limit is taken; one byte more is refused."""
    overhead = len(orjson.dumps({"x": ""}))
    fits = {"x": "a" * (MAX_DATA_BYTES - overhead)}
    assert AlertEvent("evt_1", "test", 0, "", fits).data == fits
    with pytest.raises(InvalidConfigError, match="more than"):
        AlertEvent("evt_1", "test", 0, "", {"x": "a" * (MAX_DATA_BYTES - overhead + 1)})


def test_ids_at_their_length_limit() -> None:
    """An id of 100 characters is taken; 101 is refused."""
    assert AlertEvent("e" * 100, "test", 0, "", {}).id == "e" * 100
    with pytest.raises(InvalidConfigError):
        AlertEvent("e" * 101, "test", 0, "", {})
