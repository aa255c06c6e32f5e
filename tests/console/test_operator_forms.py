"""
The operator forms: limits at and past their bounds, allow lists, new
tenant ids and spend budgets, each bad field named.
"""

from __future__ import annotations

import pytest

from zerfoo_cloud.budget_records import SpendBudget
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http.console._operator_forms import (
    LimitsForm,
    budget_field,
    parse_budgets_form,
    parse_limits_form,
    parse_new_tenant_form,
)
from zerfoo_cloud.limits import MAX_LIMIT
from zerfoo_cloud.tenants.validation import MAX_ALLOW_LIST

LIMITS = {"rate_limit": "60", "token_budget": "1000", "max_concurrent_requests": "0"}


def test_limits_and_allow_list() -> None:
    """Limits are whole numbers; the allow list takes lines and commas, once each."""
    form = {**LIMITS, "model_allow_list": " m1 \r\nm2, m1\n\n"}
    assert parse_limits_form(form) == LimitsForm(60, 1000, 0, ("m1", "m2"))
    assert parse_limits_form(LIMITS).model_allow_list == ()


def test_limit_at_and_past_its_bound() -> None:
    """MAX_LIMIT is accepted; one more is refused naming the field."""
    assert (
        parse_limits_form({**LIMITS, "rate_limit": str(MAX_LIMIT)}).rate_limit
        == MAX_LIMIT
    )
    with pytest.raises(InvalidConfigError, match="between 0") as caught:
        parse_limits_form({**LIMITS, "rate_limit": str(MAX_LIMIT + 1)})
    assert caught.value.field == "rate_limit"


@pytest.mark.parametrize("value", ["", "-1", "1.5", "1e3", "ten", "9" * 40, "\uff11"])
def test_bad_limits_are_refused(value: str) -> None:
    """A limit that is not a whole number is refused, naming its field."""
    with pytest.raises(InvalidConfigError, match="whole number") as caught:
        parse_limits_form({**LIMITS, "token_budget": value})
    assert caught.value.field == "token_budget"


def test_allow_list_bound() -> None:
    """MAX_ALLOW_LIST models are accepted; one more is refused."""
    models = "\n".join(f"m{n}" for n in range(MAX_ALLOW_LIST))
    assert (
        len(parse_limits_form({**LIMITS, "model_allow_list": models}).model_allow_list)
        == MAX_ALLOW_LIST
    )
    with pytest.raises(InvalidConfigError, match="at most") as caught:
        parse_limits_form({**LIMITS, "model_allow_list": models + "\nextra"})
    assert caught.value.field == "model_allow_list"


def test_new_tenant_id() -> None:
    """A new tenant's id is checked; a bad one is refused, quoting at most 40 characters."""
    assert parse_new_tenant_form({**LIMITS, "id": "acme"})[0] == "acme"
    with pytest.raises(InvalidConfigError, match="id must be") as caught:
        parse_new_tenant_form({**LIMITS, "id": "<b>" * 100})
    assert caught.value.field == "id"
    assert len(str(caught.value)) < 200


def test_budgets() -> None:
    """Periods with an amount become budgets; blank periods have none."""
    form = {
        budget_field("month", "amount"): "12.50",
        budget_field("month", "currency"): "usd",
        budget_field("month", "alert_at"): "50, 90",
        budget_field("day", "amount"): "1",
        budget_field("day", "currency"): "USD",
        budget_field("day", "timezone"): "Europe/Paris",
        budget_field("week", "amount"): " ",
    }
    assert parse_budgets_form(form) == [
        SpendBudget("day", 1_000_000, "USD", "Europe/Paris"),
        SpendBudget("month", 12_500_000, "USD", alert_at=(50, 90)),
    ]
    assert parse_budgets_form({}) == []


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("amount", "-1", "must not be negative"),
        ("amount", "1.0000001", "decimal places"),
        ("currency", "XYZ", "currency"),
        ("timezone", "Mars/Base", "time zone"),
        ("alert_at", "80, 50", "alert_at"),
        ("alert_at", "fifty", "percents separated by commas"),
    ],
)
def test_bad_budgets_name_period_and_field(name: str, value: str, message: str) -> None:
    """A bad budget field is refused with the period and field in the message."""
    form = {
        budget_field("week", "amount"): "5",
        budget_field("week", "currency"): "USD",
        budget_field("week", name): value,
    }
    with pytest.raises(InvalidConfigError, match=message) as caught:
        parse_budgets_form(form)
    assert str(caught.value).startswith("week budget: ")
