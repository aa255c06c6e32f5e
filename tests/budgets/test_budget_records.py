"""
Spend budget records: valid by construction, stored with tenants and keys.
"""

from __future__ import annotations

import attrs
import pytest

from zerfoo_cloud.budget_records import (
    MAX_BUDGET_MICROS,
    SpendBudget,
    budgets_from_list,
    check_budget_set,
)
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.key_records import KeyRecord, key_from_dict
from zerfoo_cloud.tenant_records import TenantRecord

MONTHLY = SpendBudget("month", 12_500_000, "USD", "Europe/Paris", (50, 90))


def test_round_trip_of_the_stored_form() -> None:
    data = MONTHLY.to_dict()
    assert data == {
        "period": "month",
        "amount": "12.5",
        "currency": "USD",
        "timezone": "Europe/Paris",
        "alert_at": [50, 90],
    }
    assert SpendBudget.from_dict(data) == MONTHLY


def test_defaults() -> None:
    budget = SpendBudget.from_dict({"period": "day", "amount": "1", "currency": "EUR"})
    assert budget == SpendBudget("day", 1_000_000, "EUR", "UTC", (50, 80, 100))


@pytest.mark.parametrize("amount", [1, MAX_BUDGET_MICROS])
def test_amount_at_its_limits(amount: int) -> None:
    assert SpendBudget("lifetime", amount, "USD").amount == amount


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -1}, "amount"),
        ({"amount": MAX_BUDGET_MICROS + 1}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": True}, "amount"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "ZZZ"}, "currency"),
        ({"period": "year"}, "period"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"alert_at": (80, 50)}, "alert_at"),
        ({"alert_at": (0,)}, "alert_at"),
        ({"alert_at": (101,)}, "alert_at"),
        ({"alert_at": (50, 50)}, "alert_at"),
        ({"alert_at": "50"}, "alert_at"),
    ],
)
def test_bad_fields_are_refused_in_one_line(
    changes: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {
        "period": "month",
        "amount": 1_000_000,
        "currency": "USD",
        "timezone": "UTC",
        "alert_at": (50,),
    }
    args.update(changes)
    with pytest.raises(InvalidConfigError) as caught:
        SpendBudget(**args)
    assert field in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"period": "day", "amount": "-1", "currency": "USD"}, "amount"),
        ({"period": "day", "amount": "0", "currency": "USD"}, "amount"),
        ({"period": "day", "amount": "9007199254.740992", "currency": "USD"}, "amount"),
        ({"period": "day", "amount": 1.5, "currency": "USD"}, "amount"),
        ({"period": "day", "currency": "USD"}, "amount"),
        ({"period": "day", "amount": "1", "currency": "USD", "colour": 1}, "colour"),
        ([], "spend_budgets"),
    ],
)
def test_bad_stored_forms_name_the_field(data: object, field: str) -> None:
    with pytest.raises(InvalidConfigError, match=field):
        SpendBudget.from_dict(data)


def test_the_largest_amount_as_text() -> None:
    data = {"period": "day", "amount": "9007199254.740991", "currency": "USD"}
    assert SpendBudget.from_dict(data).amount == MAX_BUDGET_MICROS


def test_one_budget_per_period() -> None:
    with pytest.raises(InvalidConfigError, match="one budget per period"):
        check_budget_set([MONTHLY, attrs.evolve(MONTHLY, amount=1)])
    assert budgets_from_list([MONTHLY.to_dict()]) == (MONTHLY,)


def test_threshold_amounts_round_up() -> None:
    budget = SpendBudget("day", 3, "USD")
    assert [budget.threshold_amount(p) for p in (50, 80, 100)] == [2, 3, 3]


def _record(**changes: object) -> TenantRecord:
    return TenantRecord(
        id="acme",
        key_hash="a" * 64,
        rate_limit=0,
        token_budget=0,
        **changes,  # type: ignore[arg-type]
    )


def test_tenant_budgets_survive_the_stored_form() -> None:
    record = _record(spend_budgets=(MONTHLY,))
    assert TenantRecord.from_bytes(record.to_bytes()) == record


def test_old_records_read_without_budgets() -> None:
    raw = _record().to_bytes()
    assert b"spend_budgets" not in raw
    assert TenantRecord.from_bytes(raw).spend_budgets == ()


def test_key_budgets_survive_the_stored_form() -> None:
    key = KeyRecord(
        id="k-0123456789abcdef", key_hash="b" * 64, spend_budgets=(MONTHLY,)
    )
    assert key_from_dict(key.to_dict()) == key
    plain = attrs.evolve(key, spend_budgets=())
    assert "spend_budgets" not in plain.to_dict()
    assert key_from_dict(plain.to_dict()).spend_budgets == ()
    record = _record(keys=(_record().keys[0], key))
    assert TenantRecord.from_bytes(record.to_bytes()).keys[1].spend_budgets == (
        MONTHLY,
    )


def test_a_bad_stored_budget_is_refused() -> None:
    raw = _record(spend_budgets=(MONTHLY,)).to_bytes().replace(b'"12.5"', b'"-3"')
    with pytest.raises(ValueError, match="amount"):
        TenantRecord.from_bytes(raw)
