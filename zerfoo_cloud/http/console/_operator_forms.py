"""
The operator pages' forms, read into checked values: a new tenant, a
tenant's limits and allow list, and its spend budgets.

Each reader takes the submitted fields as text and raises
`InvalidConfigError` naming the first bad field, so a form is applied whole
or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

import attrs

from zerfoo_cloud._field_limits import MAX_MODEL_LENGTH
from zerfoo_cloud.budget_records import BUDGET_PERIODS, SpendBudget
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.pricing import ModelPrice
from zerfoo_cloud.tenants.validation import check_id, check_limit, check_models

__all__ = [
    "LIMIT_FIELDS",
    "LimitsForm",
    "budget_field",
    "parse_budgets_form",
    "parse_limits_form",
    "parse_new_tenant_form",
    "parse_price_form",
]

#: The limit fields of the tenant forms, in the order shown.
LIMIT_FIELDS = ("rate_limit", "token_budget", "max_concurrent_requests")
_LABELS = {
    "rate_limit": "Requests per minute",
    "token_budget": "Tokens per minute",
    "max_concurrent_requests": "Concurrent requests",
}
#: The longest text quoted back in an error message.
_QUOTE = 40
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
_SEPARATORS = re.compile(r"[\r\n,]+")


@attrs.frozen
class LimitsForm:
    """
    A tenant's limits and allow list as a form sets them (0: unlimited;
    an empty allow list: every model).

    .. versionadded:: 0.1.0
    """

    rate_limit: int
    token_budget: int
    max_concurrent_requests: int
    model_allow_list: tuple[str, ...]


def _text(form: Mapping[str, str], name: str) -> str:
    return form.get(name, "").strip()


def _limit(form: Mapping[str, str], name: str) -> int:
    text = _text(form, name)
    if not _DIGITS.fullmatch(text):
        msg = (
            f"{_LABELS[name]} ({name}) must be a whole number, 0 for unlimited, "
            f"not {text[:_QUOTE]!r}"
        )
        raise InvalidConfigError(msg, field=name)
    return check_limit(name, int(text))


def parse_limits_form(form: Mapping[str, str]) -> LimitsForm:
    """
    Read ``rate_limit``, ``token_budget``, ``max_concurrent_requests``
    (whole numbers) and ``model_allow_list`` (model names, one per line or
    separated by commas; blank: every model).

    Raises:
        InvalidConfigError: a limit that is not a whole number in range,
            or a bad allow list (``field`` names it).

    .. versionadded:: 0.1.0
    """
    rate_limit, token_budget, concurrency = (_limit(form, n) for n in LIMIT_FIELDS)
    names = [m.strip() for m in _SEPARATORS.split(form.get("model_allow_list", ""))]
    models = check_models(tuple(dict.fromkeys(m for m in names if m)))
    return LimitsForm(rate_limit, token_budget, concurrency, models)


def parse_new_tenant_form(form: Mapping[str, str]) -> tuple[str, LimitsForm]:
    """
    Read a new tenant's ``id`` and its limits (`parse_limits_form`).

    Raises:
        InvalidConfigError: a bad id or limit (``field`` names it).

    .. versionadded:: 0.1.0
    """
    tenant_id = _text(form, "id")
    try:
        check_id(tenant_id)
    except InvalidConfigError:
        msg = (
            "id must be 1 to 128 letters, digits and . _ - : @, starting with "
            f"a letter or digit, not {tenant_id[:_QUOTE]!r}"
        )
        raise InvalidConfigError(msg, field="id") from None
    return tenant_id, parse_limits_form(form)


def budget_field(period: str, name: str) -> str:
    """
    The form field of a budget's *name* (``amount``, ``currency``,
    ``timezone``, ``alert_at``) for *period*: ``budget_month_amount``.

    .. versionadded:: 0.1.0
    """
    return f"budget_{period}_{name}"


def _percents(text: str, period: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",")]
    if not all(_DIGITS.fullmatch(p) for p in parts):
        msg = (
            f"{period} budget: alert at must be percents separated by commas, "
            f"such as 50, 80, 100, not {text[:_QUOTE]!r}"
        )
        raise InvalidConfigError(msg, field=budget_field(period, "alert_at"))
    return tuple(int(p) for p in parts)


def parse_budgets_form(form: Mapping[str, str]) -> list[SpendBudget]:
    """
    Read one spend budget per period of `BUDGET_PERIODS` that has an amount
    (fields `budget_field`: ``amount`` as decimal text, ``currency``,
    ``timezone`` (blank: UTC), ``alert_at`` (blank: 50, 80, 100)). A period
    whose amount is blank has no budget.

    Raises:
        InvalidConfigError: a bad field; the message names the period and
            the field.

    .. versionadded:: 0.1.0
    """
    budgets = []
    for period in BUDGET_PERIODS:
        amount = _text(form, budget_field(period, "amount"))
        if not amount:
            continue
        data: dict[str, object] = {
            "period": period,
            "amount": amount,
            "currency": _text(form, budget_field(period, "currency")).upper(),
        }
        zone = _text(form, budget_field(period, "timezone"))
        if zone:
            data["timezone"] = zone
        alert_at = _text(form, budget_field(period, "alert_at"))
        if alert_at:
            data["alert_at"] = _percents(alert_at, period)
        try:
            budgets.append(SpendBudget.from_dict(data))
        except InvalidConfigError as exc:
            msg = f"{period} budget: {exc}"
            raise InvalidConfigError(msg, field=exc.field) from None
    return budgets


def parse_price_form(
    form: Mapping[str, str], now: datetime
) -> tuple[str, ModelPrice, bool]:
    """
    Read one price of one model: ``model``, ``input``, ``output`` and
    optionally ``cached_input`` (decimal text per million tokens; blank
    cached input: the input rate), and ``effective_from`` (ISO 8601 with an
    offset, or blank or ``now`` for the moment of the change).

    Returns:
        The model, its price (from *now* when it takes effect at once) and
        whether it does (`zerfoo_cloud.price_book.PriceBook.add`'s
        *from_now*).

    Raises:
        InvalidConfigError: a bad field (``field`` names it).

    .. versionadded:: 0.1.0
    """
    model = _text(form, "model")
    if not 0 < len(model) <= MAX_MODEL_LENGTH:
        msg = f"model must be 1 to {MAX_MODEL_LENGTH} characters"
        raise InvalidConfigError(msg, field="model")
    when = _text(form, "effective_from")
    from_now = when.lower() in {"", "now"}
    data: dict[str, object] = {
        "effective_from": now if from_now else when,
        "input": _text(form, "input"),
        "output": _text(form, "output"),
    }
    cached = _text(form, "cached_input")
    if cached:
        data["cached_input"] = cached
    return model, ModelPrice.from_mapping(data, field="price"), from_now
