"""
Adding the console to an admin API: `mount_console`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.http.console._app import Console
from zerfoo_cloud.http.console._services import ConsoleServices, SignInLink
from zerfoo_cloud.sso.oidc.config import OPERATORS

if TYPE_CHECKING:
    from zerfoo_cloud.http.admin import AdminAPI

__all__ = ["mount_console", "sso_links"]


def sso_links(api: AdminAPI) -> Callable[[str], list[SignInLink]]:
    """
    The single sign-on links of each tenant: SAML where *api* has a SAML
    provider for it, OpenID Connect where it has an OpenID provider, each
    landing in the tenant's console pages. ``""`` asks for the operators'
    (OpenID Connect only).
    """

    def links(tenant_id: str) -> list[SignInLink]:
        found: list[SignInLink] = []
        name = tenant_id or OPERATORS
        if tenant_id and tenant_id in api.saml_tenants:
            found.append(
                SignInLink(
                    "saml",
                    "Sign in with SAML",
                    f"/sso/saml/{tenant_id}/login?next=/console/t/{tenant_id}/",
                )
            )
        if name in api.oidc_names:
            found.append(
                SignInLink(
                    "oidc", "Sign in with OpenID Connect", f"/sso/oidc/{name}/login"
                )
            )
        return found

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
        sign_in: tenant id (``""``: the operators) -> its single sign-on
            links (default: `sso_links`).

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
            sign_in=sign_in or sso_links(api),
            prices=api.prices,
        )
    )
    api.mount(console.routes())
    return console
