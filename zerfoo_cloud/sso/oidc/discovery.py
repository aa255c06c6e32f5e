"""
An OpenID provider's discovery document
(``<issuer>/.well-known/openid-configuration``), checked: the issuer it
names must be the configured one, exactly.
"""

from __future__ import annotations

from typing import Any

import attrs

from zerfoo_cloud.errors import OIDCError
from zerfoo_cloud.sso.oidc._fetch import check_url

__all__ = ["ProviderMetadata", "discovery_url"]


def discovery_url(issuer: str) -> str:
    """
    Where *issuer* publishes its discovery document.
    """
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


@attrs.frozen
class ProviderMetadata:
    """
    The endpoints of an OpenID provider, read from its discovery document.

    .. versionadded:: 0.1.0
    """

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    code_challenge_methods: tuple[str, ...] = ()

    @classmethod
    def from_document(cls, document: Any, *, issuer: str) -> ProviderMetadata:
        """
        The endpoints of *document*, which must name *issuer* exactly.

        Raises:
            OIDCError: ``oidc_discovery``: not an object, another issuer, a
                missing endpoint or one that is not an https URL.
        """
        if not isinstance(document, dict):
            msg = "the discovery document is not a JSON object"
            raise OIDCError(msg, code="oidc_discovery")
        found = document.get("issuer")
        if found != issuer:
            msg = (
                f"the discovery document names issuer {str(found)[:200]!r}, "
                f"not {issuer!r}"
            )
            raise OIDCError(msg, code="oidc_discovery")
        endpoints = {
            name: check_url(document.get(name), name)
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
        }
        methods = document.get("code_challenge_methods_supported", [])
        if not isinstance(methods, list):
            methods = []
        if methods and "S256" not in methods:
            msg = "the provider does not support PKCE with S256"
            raise OIDCError(msg, code="oidc_discovery")
        return cls(
            issuer,
            code_challenge_methods=tuple(m for m in methods if isinstance(m, str)),
            **endpoints,
        )
