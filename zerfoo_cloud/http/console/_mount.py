"""
Adding the console to an admin API: `mount_console`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http.console._app import Console
from zerfoo_cloud.http.console._services import ConsoleServices, SignInLink

if TYPE_CHECKING:
    from zerfoo_cloud.http.admin import AdminAPI

__all__ = ["mount_console", "saml_links"]


def saml_links(api: AdminAPI) -> Callable[[str], list[SignInLink]]:
    """
    The SAML sign-in link of each tenant *api* has a SAML provider for,
    landing in the tenant's console pages.
    """

    def links(tenant_id: str) -> list[SignInLink]:
        if tenant_id not in api.saml_tenants:
            return []
        return [
            SignInLink(
                "saml",
                "Sign in with SAML",
                f"/sso/saml/{tenant_id}/login?next=/console/t/{tenant_id}/",
            )
        ]

    return links


def mount_console(
    api: AdminAPI,
    *,
    secure_cookies: bool = True,
    sign_in: Callable[[str], Sequence[SignInLink]] | None = None,
) -> Console:
    """
    Serve the web console under ``/console/`` on *api* (its tenants,
    meter, audit log, admin keys and session signer); return it.

    Args:
        api: the admin API; it needs a `zerfoo_cloud.http.admin.SessionSigner`.
        secure_cookies: mark cookies ``Secure`` (the default). ``False`` is
            for plain-HTTP development and tests on ``http://127.0.0.1``
            only: the console then signs nobody in on any other host.
        sign_in: tenant id -> its single sign-on links (default: SAML, for
            the tenants *api* has a provider for).

    Raises:
        InvalidConfigError: *api* has no session signer.

    .. versionadded:: 0.1.0
    """
    if api.sessions is None:
        msg = "the console signs people in: give the AdminAPI sessions=SessionSigner(secret)"
        raise InvalidConfigError(msg, field="sessions")
    console = Console(
        ConsoleServices(
            tenants=api.tenants,
            meter=api.meter,
            audit=api.audit,
            log=api.log_audit,
            is_admin_key=api.is_admin_key,
            sessions=api.sessions,
            clock=api.clock,
            max_body=api.max_body,
            secure_cookies=secure_cookies,
            sign_in=sign_in or saml_links(api),
            prices=api.prices,
        )
    )
    api.mount(console.routes())
    return console
