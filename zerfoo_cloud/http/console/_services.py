"""
What the console's pages work on: the tenant manager, the meter, the
audit log and the session signer the admin API was given, and the
console's own settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock
    from zerfoo_cloud.audit import AuditEntry, AuditLogger
    from zerfoo_cloud.http.admin._report_routes import UsageMeter
    from zerfoo_cloud.http.admin._sessions import SessionSigner
    from zerfoo_cloud.price_book import PriceBook
    from zerfoo_cloud.tenants import TenantManager

__all__ = ["ConsoleServices", "SignInLink"]


@attrs.frozen
class SignInLink:
    """
    One way a tenant's people sign in: ``method`` (``"saml"``, ``"oidc"``),
    a ``label`` for the button and the ``url`` that starts it.
    """

    method: str
    label: str
    url: str


@attrs.frozen
class ConsoleServices:
    """
    The parts every console page may use.

    Attributes:
        tenants: the tenant manager (store calls run in worker threads).
        meter: usage and invoices (``None``: those pages say so).
        audit: the audit log (``None``: that page says so).
        log: writes one audit entry, never raising.
        is_admin_key: whether a text is one of the admin keys (hashed,
            compared in constant time).
        sessions: signs and checks sessions and CSRF tokens.
        clock: the time source, Unix seconds.
        max_body: the largest form body, in bytes.
        secure_cookies: set cookies ``Secure``; ``False`` is for plain
            ``http://127.0.0.1`` development and tests only, and the console
            then refuses to sign anyone in on any other host.
        sign_in: tenant id -> the ways its people sign in.
        prices: the service's price table, changed on the operators'
            Prices page (``None``: the page shows the meter's table, read
            only).
    """

    tenants: TenantManager
    meter: UsageMeter | None
    audit: AuditLogger | None
    log: Callable[[AuditEntry], None]
    is_admin_key: Callable[[str], bool]
    sessions: SessionSigner
    clock: Clock
    max_body: int
    secure_cookies: bool = True
    sign_in: Callable[[str], Sequence[SignInLink]] = lambda tenant_id: ()
    prices: PriceBook | None = None
