"""
OpenID Connect login, relying-party side: the authorization code flow with
PKCE (S256) against one provider per tenant (and one for the operators).

`OIDCProvider` reads the provider's discovery document (whose issuer must
be the configured one exactly), fetches and caches its JWK set (refetched,
at most once per ``jwks_refresh_interval``, for an unknown key id), builds
the authorization URL, trades the code at the token endpoint
(``client_secret_basic``, ``client_secret_post`` or a public client) and
checks the ID token: an algorithm from the allow list (public-key only:
never ``none`` nor HMAC), its signature by a key of the set, ``iss``,
``aud`` (and ``azp`` with several audiences), ``exp``/``nbf``/``iat``
within the clock skew, the login's ``nonce`` and ``at_hash`` when present.
Every failure raises `zerfoo_cloud.errors.OIDCError` with a ``code``.
See ``docs/sso.md``.

Needs the ``oidc`` extra (joserfc and httpx).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from zerfoo_cloud._extras import needs_extra

with needs_extra("oidc", "OpenID Connect login"):
    import httpx  # noqa: F401 - checked here, used by _fetch
    import joserfc  # noqa: F401 - checked here, used by _jwks and _id_token

from zerfoo_cloud.sso.oidc.config import (
    DEFAULT_ALGORITHMS,
    OPERATORS,
    SUPPORTED_ALGORITHMS,
    TOKEN_AUTH_METHODS,
    ClientSecret,
    OIDCConfig,
    read_oidc_file,
)
from zerfoo_cloud.sso.oidc.discovery import ProviderMetadata, discovery_url
from zerfoo_cloud.sso.oidc.provider import (
    OIDCProvider,
    code_challenge,
    new_code_verifier,
)

__all__ = [
    "DEFAULT_ALGORITHMS",
    "OPERATORS",
    "SUPPORTED_ALGORITHMS",
    "TOKEN_AUTH_METHODS",
    "ClientSecret",
    "OIDCConfig",
    "OIDCProvider",
    "ProviderMetadata",
    "code_challenge",
    "discovery_url",
    "new_code_verifier",
    "read_oidc_file",
]
