"""
Price tables: the price in force at a moment, price changes, the default
for models without a price, and the refusal when there is none.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.pricing._support import refused
from zerfoo_cloud.errors import (
    InvalidConfigError,
    RequestRejectedError,
    UnpricedModelError,
)
from zerfoo_cloud.http import status_for
from zerfoo_cloud.http._errors import error_response
from zerfoo_cloud.metering import MAX_MODEL_LENGTH
from zerfoo_cloud.pricing import ModelPrice, PriceTable

JAN = datetime(2026, 1, 1, tzinfo=timezone.utc)
MAR = datetime(2026, 3, 1, tzinfo=timezone.utc)
TICK = timedelta(microseconds=1)


def _entry(when: str, inp: str, out: str) -> dict[str, str]:
    return {"effective_from": when, "input": inp, "output": out}


def _table(**extra: Any) -> PriceTable:
    return PriceTable.from_mapping(
        {
            "currency": "USD",
            "models": {
                "m": [
                    _entry("2026-03-01T00:00:00Z", "0.10", "0.40"),
                    _entry("2026-01-01T00:00:00Z", "0.15", "0.60"),
                ]
            },
            **extra,
        }
    )


def test_the_price_in_force_is_the_latest_one_at_or_before_the_moment() -> None:
    table = _table()
    assert [p.effective_from for p in table.models["m"]] == [JAN, MAR]  # sorted
    assert table.price_at("m", JAN).input == 150_000
    assert table.price_at("m", MAR - TICK).input == 150_000
    assert table.price_at("m", MAR).input == 100_000
    assert (
        table.price_at("m", datetime(9999, 12, 31, tzinfo=timezone.utc)).input
        == 100_000
    )
    # The same moment in another offset is the same moment.
    paris = timezone(timedelta(hours=1))
    assert (
        table.price_at("m", datetime(2026, 3, 1, 0, 59, tzinfo=paris)).input == 150_000
    )
    assert (
        table.price_at("m", datetime(2026, 3, 1, 1, 0, tzinfo=paris)).input == 100_000
    )


def test_a_price_change_does_not_change_the_cost_of_earlier_requests() -> None:
    table = _table()
    before = table.cost_of("m", 1_000_000, 1_000_000, when=MAR - TICK)
    changed = table.with_price(
        "m", ModelPrice(MAR + timedelta(days=1), 5_000_000, 5_000_000, 5_000_000)
    )
    assert changed.cost_of("m", 1_000_000, 1_000_000, when=MAR - TICK) == before
    assert before == 750_000  # 0.15 + 0.60
    assert changed.cost_of("m", 1_000_000, 1_000_000, when=MAR) == 500_000
    later = MAR + timedelta(days=1)
    assert changed.cost_of("m", 1_000_000, 1_000_000, when=later) == 10_000_000
    assert table.cost_of("m", 1_000_000, 1_000_000, when=later) == 500_000


def test_an_unpriced_model_is_refused_by_default() -> None:
    table = _table()
    assert table.default == ()
    with pytest.raises(UnpricedModelError) as caught:
        table.cost_of("other", 1, 1, when=MAR)
    assert caught.value.model == "other"
    with pytest.raises(UnpricedModelError):
        table.price_at("m", JAN - TICK)  # before its first price


def test_the_refusal_is_an_openai_shaped_403() -> None:
    exc = UnpricedModelError("gpt-9")
    assert isinstance(exc, RequestRejectedError)
    assert isinstance(exc, PermissionError)
    assert status_for(exc) == (403, "invalid_request_error", "model_not_priced")
    response = error_response(exc, request_id="req_1")
    error = json.loads(response.body)["error"]
    assert response.status == 403
    assert error["param"] == "model"
    assert error["code"] == "model_not_priced"
    assert "'gpt-9' has no price" in error["message"]


def test_a_default_prices_every_model_without_a_price_in_force() -> None:
    table = _table(default=[_entry("2026-02-01T00:00:00Z", "2", "6")])
    feb = datetime(2026, 2, 1, tzinfo=timezone.utc)
    assert table.price_at("other", feb).output == 6_000_000
    assert table.cost_of("other", 1_000_000, 0, when=feb) == 2_000_000
    with pytest.raises(UnpricedModelError):
        table.price_at("other", feb - TICK)
    # A model's own price wins over the default once in force...
    assert table.price_at("m", feb).input == 150_000
    # ... and before it, the default prices it too.
    assert table.price_at("m", JAN - TICK + timedelta(days=40)).input == 150_000


def test_when_must_be_an_aware_datetime() -> None:
    table = _table()
    for bad in (datetime(2026, 5, 1), "2026-05-01T00:00:00Z", 1.7e9):  # noqa: DTZ001 - the point of the test
        with pytest.raises(InvalidConfigError) as caught:
            table.price_at("m", bad)  # type: ignore[arg-type]
        assert caught.value.field == "when"


def test_two_prices_of_one_model_at_one_moment_are_refused() -> None:
    with pytest.raises(InvalidConfigError, match="two prices take effect") as caught:
        PriceTable.from_mapping(
            {
                "currency": "USD",
                "models": {
                    "m": [
                        _entry("2026-01-01T00:00:00Z", "1", "1"),
                        _entry("2026-01-01T01:00:00+01:00", "2", "2"),
                    ]
                },
            }
        )
    assert caught.value.field == "models['m']"
    table = _table()
    with pytest.raises(InvalidConfigError, match="two prices take effect"):
        table.with_price("m", ModelPrice(MAR, 1, 1, 1))
    assert table == _table()  # unchanged


def test_with_price_adds_a_model_and_leaves_the_table_alone() -> None:
    table = _table(default=[_entry("2026-01-01T00:00:00Z", "1", "1")])
    grown = table.with_price("new", ModelPrice(MAR, 1, 2, 3))
    assert "new" not in table.models
    assert grown.models["new"] == (ModelPrice(MAR, 1, 2, 3),)
    assert grown.default == table.default
    with pytest.raises(InvalidConfigError):
        table.with_price("", ModelPrice(MAR, 1, 2, 3))


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ({"models": {}}, "currency", "missing"),
        ({"currency": "usd"}, "currency", "in capitals"),
        ({"currency": "ABC"}, "currency", "unknown currency"),
        ({"currency": "USD", "model": {}}, "model", "unknown key"),
        ({"currency": "USD", "models": []}, "models", "a table of model names"),
        ({"currency": "USD", "models": {"m": {}}}, "models['m']", "a list of prices"),
        (
            {"currency": "USD", "models": {"m": "0.1"}},
            "models['m']",
            "a list of prices",
        ),
        ({"currency": "USD", "models": {"m": []}}, "models['m']", "at least one price"),
        ({"currency": "USD", "default": []}, "default", "at least one price"),
        ({"currency": "USD", "models": {"": []}}, "models", "model name"),
        (
            {"currency": "USD", "models": {"x" * (MAX_MODEL_LENGTH + 1): []}},
            "models",
            "model name",
        ),
        ({"currency": "USD", "models": {"\udc00": []}}, "models", "model name"),
        (
            {"currency": "USD", "models": {"m": [_entry("2026-01-01", "1", "1")]}},
            "models['m'][0].effective_from",
            "UTC offset",
        ),
        (
            {"currency": "USD", "models": {"m": [_entry("2026-01-01Z", "1", "-1")]}},
            "models['m'][0].output",
            "negative",
        ),
        (
            {"currency": "USD", "default": [_entry("2026-01-01Z", "1e3", "1")]},
            "default[0].input",
            "plain decimal",
        ),
        ([], "price_table", "a mapping"),
    ],
)
def test_bad_tables_are_refused_naming_the_field(
    data: object, field: str, says: str
) -> None:
    refused(lambda: PriceTable.from_mapping(data), says, field)


def test_a_model_name_at_the_length_limit_is_priced() -> None:
    name = "x" * MAX_MODEL_LENGTH
    table = PriceTable("USD", {name: [ModelPrice(JAN, 1, 1, 1)]})
    assert table.price_at(name, MAR).input == 1


def test_the_mapping_round_trips() -> None:
    table = _table(default=[_entry("2026-01-01T00:00:00Z", "2", "6")])
    data = table.to_mapping()
    assert PriceTable.from_mapping(data) == table
    assert PriceTable.from_mapping(json.loads(json.dumps(data))) == table
    assert "default" not in _table().to_mapping()
    assert table != _table()
    assert table != "USD"
    assert "currency='USD'" in repr(table)
    with pytest.raises(TypeError):
        hash(table)


def test_the_constructor_checks_what_it_is_given() -> None:
    with pytest.raises(InvalidConfigError, match="a ModelPrice"):
        PriceTable("USD", {"m": [{"input": "1"}]})  # type: ignore[list-item]
    assert PriceTable("EUR").models == {}
    with pytest.raises(TypeError):
        PriceTable("EUR").models["m"] = ()  # type: ignore[index]
