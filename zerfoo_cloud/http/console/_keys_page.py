"""
The tenant's API keys, ``/console/t/{tenant}/keys``: the list, a form to
create one (its secret shown once, with a copy button), and a revoke and
a rotate (with a grace period) button per key. Every change is audited
with the person who made it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerfoo_cloud.audit import AuditAction
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http.console._pages import Page, PageProblem
from zerfoo_cloud.tenants.key_checks import MAX_GRACE, MAX_KEY_LIFETIME

if TYPE_CHECKING:
    from starlette.responses import Response

    from zerfoo_cloud.http.console._pages import PageRequest
    from zerfoo_cloud.key_records import KeyRecord

__all__ = ["GRACE_CHOICES", "MAX_EXPIRY_DAYS", "PAGES"]

_DAY = 86_400
#: The longest expiry the form takes, in days.
MAX_EXPIRY_DAYS = int(MAX_KEY_LIFETIME // _DAY)
#: The grace periods the rotate form offers: seconds -> label.
GRACE_CHOICES = {
    0: "none (the old key stops now)",
    3600: "1 hour",
    86_400: "1 day",
    7 * 86_400: "7 days",
    int(MAX_GRACE): "30 days",
}
_MAX_SCOPE_TEXT = 4096


def _keys(request: PageRequest) -> list[KeyRecord]:
    assert request.tenant_id is not None
    # Newest first: the key just made is at the top.
    return request.services.tenants.list_keys(request.tenant_id)[::-1]


def _page(
    request: PageRequest,
    *,
    status: int = 200,
    error: str = "",
    secret: str = "",
    made: KeyRecord | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    return request.render(
        "keys.html",
        status=status,
        keys=_keys(request),
        error=error,
        secret=secret,
        made=made,
        form=form or {"name": "", "expires_days": "", "scope": ""},
        grace_choices=GRACE_CHOICES,
        max_expiry_days=MAX_EXPIRY_DAYS,
    )


def keys(request: PageRequest) -> Response:
    """
    ``GET``: the tenant's keys, newest first, and the create form.
    """
    return _page(request)


def _expiry(request: PageRequest, text: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_EXPIRY_DAYS:
        msg = f"Expires in must be a whole number of days from 1 to {MAX_EXPIRY_DAYS:,}, or empty for never."
        raise InvalidConfigError(msg, field="expires_days")
    return request.now + int(text) * _DAY


def _scope(text: str) -> list[str]:
    if len(text) > _MAX_SCOPE_TEXT:
        msg = f"The scope must be at most {_MAX_SCOPE_TEXT:,} characters."
        raise InvalidConfigError(msg, field="scope")
    return [model for model in text.replace(",", " ").split() if model]


def create(request: PageRequest) -> Response:
    """
    ``POST``: a new key (``name``, ``expires_days``, ``scope``: model names
    separated by commas or spaces); its secret is on this answer only.
    """
    assert request.tenant_id is not None
    form = {
        name: request.form.get(name, "") for name in ("name", "expires_days", "scope")
    }
    resource = f"tenant/{request.tenant_id}/keys"
    try:
        secret, made = request.services.tenants.create_key(
            request.tenant_id,
            name=form["name"].strip(),
            expires_at=_expiry(request, form["expires_days"]),
            model_scope=_scope(form["scope"]),
            incarnation=request.session.incarnation or None,
        )
    except InvalidConfigError as exc:
        request.audit(AuditAction.CREATE, 400, resource)
        return _page(request, status=400, error=str(exc), form=form)
    request.audit(AuditAction.CREATE, 201, f"{resource}/{made.id}")
    return _page(request, status=201, secret=secret, made=made)


def revoke(request: PageRequest) -> Response:
    """
    ``POST``: revoke the key; it stops working at once.
    """
    assert request.tenant_id is not None
    key_id = request.params["key_id"]
    resource = f"tenant/{request.tenant_id}/keys/{key_id}"
    try:
        request.services.tenants.revoke_key(
            request.tenant_id, key_id, incarnation=request.session.incarnation or None
        )
    except Exception:
        request.audit(AuditAction.DELETE, 404, resource)
        raise
    request.audit(AuditAction.DELETE, 200, resource)
    return request.redirect("/keys")


def rotate(request: PageRequest) -> Response:
    """
    ``POST``: replace the key by a new one (``grace``: seconds the old one
    keeps working, one of `GRACE_CHOICES`); the new secret is on this
    answer only.
    """
    assert request.tenant_id is not None
    key_id = request.params["key_id"]
    resource = f"tenant/{request.tenant_id}/keys/{key_id}"
    grace_text = request.form.get("grace", "0")
    if not grace_text.isdigit() or int(grace_text) not in GRACE_CHOICES:
        request.audit(AuditAction.UPDATE, 400, resource)
        raise PageProblem(400, "Choose one of the grace periods the form offers.")
    try:
        secret, new, _old = request.services.tenants.rotate_api_key(
            request.tenant_id,
            key_id,
            grace=int(grace_text),
            incarnation=request.session.incarnation or None,
        )
    except Exception:
        request.audit(AuditAction.UPDATE, 404, resource)
        raise
    request.audit(AuditAction.UPDATE, 200, f"{resource} -> {new.id}")
    return _page(request, secret=secret, made=new)


#: The keys page and its forms.
PAGES = (
    Page("/keys", "API keys", get=keys, post=create, nav="Keys"),
    Page("/keys/{key_id}/revoke", "Revoke a key", post=revoke),
    Page("/keys/{key_id}/rotate", "Rotate a key", post=rotate),
)
