"""
What every identity provider offers: the `SSOProvider` protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from zerfoo_cloud.sso.identity import SSOIdentity

__all__ = ["SSOProvider"]


@runtime_checkable
class SSOProvider(Protocol):
    """
    **Protocol**: an identity provider a tenant's users sign in with.

    `SAMLProvider` is the SAML 2.0 implementation. OpenID Connect's
    `zerfoo_cloud.sso.oidc.OIDCProvider` has a flow of its own (a code
    traded at the token endpoint, then the ID token checked); both end in
    an `SSOIdentity`.

    .. versionadded:: 0.1.0
    """

    @property
    def entity_id(self) -> str:
        """
        The identity provider's entity id.
        """

    def validate_assertion(
        self, data: bytes, *, request_id: str | None = None
    ) -> SSOIdentity:
        """
        Validate what the IdP sent and return the user it vouches for.

        Raises:
            SAMLError: for every rejection (a subclass says why).
        """
