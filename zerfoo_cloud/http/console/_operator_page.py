"""
The operators' pages, under ``/console/operator``: every tenant with its
usage this month, a new tenant (its key shown once), a tenant's limits,
allow list and spend budgets, deleting a tenant (after a confirmation),
and the price table.

Every change is a POST form (the console checks the CSRF token and the
operator role first) and is audited with the operator's identity, refused
changes too; a refused form is shown again with the reason, and nothing
is changed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import attrs

from zerfoo_cloud.audit import AuditAction
from zerfoo_cloud.budget_records import BUDGET_PERIODS
from zerfoo_cloud.errors import (
    InvalidConfigError,
    PricesReadOnlyError,
    PriceTableChangedError,
    TenantExistsError,
    TenantNotFoundError,
)
from zerfoo_cloud.http.console._operator_forms import (
    LIMIT_FIELDS,
    budget_field,
    parse_budgets_form,
    parse_limits_form,
    parse_new_tenant_form,
    parse_price_form,
)
from zerfoo_cloud.http.console._pages import Page, PageProblem
from zerfoo_cloud.http.console._usage_data import DayRange
from zerfoo_cloud.tenant_records import generate_api_key
from zerfoo_cloud.tenants import TenantConfig

if TYPE_CHECKING:
    from starlette.responses import Response

    from zerfoo_cloud.http.console._pages import PageRequest
    from zerfoo_cloud.tenant_records import TenantRecord

__all__ = ["PAGES"]

_BAD_FORM = 400
_CREATED = 201
_DONE = 200
_NOT_FOUND = 404
_CONFLICT = 409


def _month(request: PageRequest) -> DayRange:
    today = datetime.fromtimestamp(request.now, timezone.utc).date()
    return DayRange(today.replace(day=1), today)


def tenants(request: PageRequest) -> Response:
    """
    Every tenant with its limits and its billed requests, tokens and spend
    this month (UTC).
    """
    records = sorted(request.services.tenants.records(), key=lambda r: r.id)
    month = _month(request)
    meter = request.services.meter
    usage: dict[str, dict[str, Any]] = {}
    if meter is not None:
        for record in records:
            rows = meter.summary(record.id, month.start(), month.end(), ())
            usage[record.id] = {
                "requests": sum(r.requests for r in rows),
                "tokens": sum(r.total_tokens for r in rows),
                "spend": sorted((r.currency, r.cost) for r in rows if r.currency),
            }
    return request.render(
        "operator.html",
        tenants=records,
        usage=usage,
        month=month,
        metered=meter is not None,
    )


def _for_tenant(request: PageRequest, tenant_id: str) -> PageRequest:
    # The same request, audited under the tenant it changes.
    return attrs.evolve(request, tenant_id=tenant_id)


def _new_page(
    request: PageRequest, *, status: int = _DONE, error: str = "", **values: Any
) -> Response:
    shown: dict[str, Any] = {"created": None, "secret": None, **values}
    return request.render(
        "operator_new.html",
        status=status,
        error=error,
        form=request.form,
        limit_fields=LIMIT_FIELDS,
        **shown,
    )


def new_tenant(request: PageRequest) -> Response:
    """
    The form of a new tenant.
    """
    return _new_page(request)


def create_tenant(request: PageRequest) -> Response:
    """
    Create the tenant of the form and show its key, once.
    """
    manager = request.services.tenants
    try:
        tenant_id, limits = parse_new_tenant_form(request.form)
    except InvalidConfigError as exc:
        request.audit(AuditAction.CREATE, _BAD_FORM, "tenant")
        return _new_page(request, status=_BAD_FORM, error=str(exc))
    api_key = generate_api_key(manager.key_prefix)
    config = TenantConfig(
        id=tenant_id,
        api_key=api_key,
        rate_limit=limits.rate_limit,
        token_budget=limits.token_budget,
        max_concurrent_requests=limits.max_concurrent_requests,
        model_allow_list=limits.model_allow_list,
    )
    audited = _for_tenant(request, tenant_id)
    try:
        manager.create(config)
    except TenantExistsError:
        audited.audit(AuditAction.CREATE, _CONFLICT, f"tenant/{tenant_id}")
        msg = f"a tenant with id {tenant_id!r} exists already"
        return _new_page(request, status=_CONFLICT, error=msg)
    audited.audit(AuditAction.CREATE, _CREATED, f"tenant/{tenant_id}")
    return _new_page(request, status=_CREATED, created=tenant_id, secret=api_key)


def _record(request: PageRequest) -> TenantRecord:
    tenant_id = request.params["tenant"]
    try:
        return request.services.tenants.get(tenant_id).record
    except TenantNotFoundError:
        raise PageProblem(_NOT_FOUND, f"There is no tenant {tenant_id!r}.") from None


def _budget_values(record: TenantRecord) -> dict[str, str]:
    values: dict[str, str] = {}
    for budget in record.spend_budgets:
        shown = budget.to_dict()
        for name in ("amount", "currency", "timezone"):
            values[budget_field(budget.period, name)] = str(shown[name])
        values[budget_field(budget.period, "alert_at")] = ", ".join(
            str(p) for p in budget.alert_at
        )
    return values


def _edit_page(
    request: PageRequest,
    record: TenantRecord,
    *,
    status: int = _DONE,
    error: str = "",
    done: str = "",
) -> Response:
    limits = {name: str(getattr(record, name)) for name in LIMIT_FIELDS}
    limits["model_allow_list"] = "\n".join(record.model_allow_list)
    budgets = _budget_values(record)
    if error:
        # Show what was sent, so the operator can correct it.
        sent = request.form.get("form")
        if sent == "limits":
            limits.update({k: request.form.get(k, "") for k in limits})
        elif sent == "budgets":
            budgets = {k: v for k, v in request.form.items() if k.startswith("budget_")}
    return request.render(
        "operator_tenant.html",
        status=status,
        tenant=record,
        limits=limits,
        budgets=budgets,
        periods=BUDGET_PERIODS,
        budget_field=budget_field,
        limit_fields=LIMIT_FIELDS,
        error=error,
        done=done,
    )


def edit_tenant(request: PageRequest) -> Response:
    """
    The tenant's limits, allow list and budgets, as forms.
    """
    return _edit_page(request, _record(request))


#: What each form of the tenant page says once done.
_DONE_MESSAGES = {
    "limits": "Limits saved.",
    "budgets": "Budgets saved.",
    "sessions": "Signed out: those sessions end on their next request.",
}


def save_tenant(request: PageRequest) -> Response:
    """
    Apply the limits form, the budgets form or the sign-out form (field
    ``form`` says which; the sign-out form's optional ``subject`` names the
    one person to sign out).
    """
    record = _record(request)
    audited = _for_tenant(request, record.id)
    manager = request.services.tenants
    which = request.form.get("form", "")
    if which not in _DONE_MESSAGES:
        resource = f"tenant/{record.id}/settings"
        audited.audit(AuditAction.UPDATE, _BAD_FORM, resource)
        msg = (
            "The form must say which settings it changes: limits, budgets or sessions."
        )
        return _edit_page(request, record, status=_BAD_FORM, error=msg)
    resource = f"tenant/{record.id}/{which}"
    try:
        if which == "limits":
            limits = parse_limits_form(request.form)
            manager.update(
                record.id,
                rate_limit=limits.rate_limit,
                token_budget=limits.token_budget,
                max_concurrent_requests=limits.max_concurrent_requests,
                model_allow_list=limits.model_allow_list,
                incarnation=record.incarnation,
            )
        elif which == "budgets":
            manager.set_budgets(
                record.id,
                parse_budgets_form(request.form),
                actor=request.session.actor,
            )
        else:
            manager.sign_out(
                record.id,
                subject=request.form.get("subject", "").strip() or None,
                actor=request.session.actor,
            )
    except InvalidConfigError as exc:
        audited.audit(AuditAction.UPDATE, _BAD_FORM, resource)
        return _edit_page(request, record, status=_BAD_FORM, error=str(exc))
    except TenantNotFoundError:
        audited.audit(AuditAction.UPDATE, _NOT_FOUND, resource)
        raise PageProblem(_NOT_FOUND, f"There is no tenant {record.id!r}.") from None
    audited.audit(AuditAction.UPDATE, _DONE, resource)
    return _edit_page(
        request, manager.get(record.id).record, done=_DONE_MESSAGES[which]
    )


def confirm_delete(request: PageRequest) -> Response:
    """
    Ask the operator to type the tenant's id to delete it.
    """
    return request.render("operator_delete.html", tenant=_record(request), error="")


def delete_tenant(request: PageRequest) -> Response:
    """
    Delete the tenant when the form's ``confirm`` field is its id.
    """
    record = _record(request)
    audited = _for_tenant(request, record.id)
    resource = f"tenant/{record.id}"
    if request.form.get("confirm", "") != record.id:
        audited.audit(AuditAction.DELETE, _BAD_FORM, resource)
        return request.render(
            "operator_delete.html",
            status=_BAD_FORM,
            tenant=record,
            error="Type the tenant's id exactly to confirm; nothing was deleted.",
        )
    try:
        request.services.tenants.delete(record.id)
    except TenantNotFoundError:
        audited.audit(AuditAction.DELETE, _NOT_FOUND, resource)
        raise PageProblem(_NOT_FOUND, f"There is no tenant {record.id!r}.") from None
    audited.audit(AuditAction.DELETE, _DONE, resource)
    return request.redirect("/")


def _prices_page(
    request: PageRequest, *, status: int = _DONE, error: str = "", done: str = ""
) -> Response:
    book = request.services.prices
    version = None
    if book is not None:
        stored = book.current()
        table, version = stored.table, stored.version
    else:
        table = getattr(request.services.meter, "prices", None)
    return request.render(
        "operator_prices.html",
        status=status,
        table=table,
        version=version,
        editable=book is not None and not book.read_only,
        error=error,
        done=done,
        form=request.form if error else {},
    )


def prices(request: PageRequest) -> Response:
    """
    The price table in force (the stored one, else the meter's), per model
    and from when; a form to add a price when the table can be changed.
    """
    return _prices_page(request)


def add_price(request: PageRequest) -> Response:
    """
    Add the form's price to the stored table (a change from now or from a
    later moment; the past never changes).
    """
    book = request.services.prices
    if book is None:
        raise PageProblem(_NOT_FOUND, "No price store is configured.")
    now = datetime.fromtimestamp(request.now, timezone.utc)
    try:
        model, price, from_now = parse_price_form(request.form, now)
        stored = book.add(model, price, from_now=from_now)
    except (InvalidConfigError, PricesReadOnlyError, PriceTableChangedError) as exc:
        request.audit(AuditAction.UPDATE, _BAD_FORM, "prices")
        return _prices_page(request, status=_BAD_FORM, error=str(exc))
    request.audit(AuditAction.UPDATE, _DONE, f"prices/v{stored.version}")
    return _prices_page(request, done=f"Price of {model} added.")


#: The operators' pages.
PAGES = (
    Page("/", "All tenants", get=tenants, area="operator"),
    Page(
        "/tenants/new",
        "New tenant",
        get=new_tenant,
        post=create_tenant,
        nav="New tenant",
        area="operator",
    ),
    Page(
        "/tenants/{tenant}",
        "Tenant settings",
        get=edit_tenant,
        post=save_tenant,
        area="operator",
    ),
    Page(
        "/tenants/{tenant}/delete",
        "Delete tenant",
        get=confirm_delete,
        post=delete_tenant,
        area="operator",
    ),
    Page(
        "/prices", "Prices", get=prices, post=add_price, nav="Prices", area="operator"
    ),
)
