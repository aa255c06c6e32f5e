"""
Single sign-on: SAML 2.0 Web Browser SSO, service-provider side.

`parse_saml_metadata` reads an IdP's metadata; a `SAMLProvider` built from it
validates the IdP's signed Responses (raw XML or the base64 ``SAMLResponse``
form field) and returns an `SSOIdentity`, or raises a subclass of
`zerfoo_cloud.errors.SAMLError` that says which check failed. It also builds
AuthnRequests for the HTTP-Redirect binding and the SP's own metadata. See
``docs/sso.md``.

SAML needs the ``saml`` extra (lxml and xmlsec). The error classes import
without it; every other name imports its module on first use, and raises
`zerfoo_cloud.errors.MissingExtraError` there when the extra is missing.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from zerfoo_cloud.errors import SAMLError
from zerfoo_cloud.sso.errors import (
    SAMLAlgorithmError,
    SAMLAudienceError,
    SAMLDecryptionError,
    SAMLDestinationError,
    SAMLExpiredError,
    SAMLInResponseToError,
    SAMLIssuerError,
    SAMLMetadataError,
    SAMLNotYetValidError,
    SAMLParseError,
    SAMLRecipientError,
    SAMLReplayError,
    SAMLSignatureError,
    SAMLStatusError,
    SAMLStructureError,
    SAMLSubjectConfirmationError,
    SAMLTimeError,
    SAMLUnsafeXMLError,
)
from zerfoo_cloud.sso.roles import Role, RoleMap

if TYPE_CHECKING:
    from zerfoo_cloud.sso.metadata import SAMLMetadata, parse_saml_metadata
    from zerfoo_cloud.sso.provider import (
        EMAIL_ATTRIBUTES,
        SAMLProvider,
        SSOIdentity,
        SSOProvider,
    )
    from zerfoo_cloud.sso.sp import (
        AuthnRedirect,
        build_authn_redirect,
        build_sp_metadata,
    )

#: The names that need the saml extra, and the module each lives in.
_NEEDS_SAML = {
    "EMAIL_ATTRIBUTES": "provider",
    "AuthnRedirect": "sp",
    "SAMLMetadata": "metadata",
    "SAMLProvider": "provider",
    "SSOIdentity": "provider",
    "SSOProvider": "provider",
    "build_authn_redirect": "sp",
    "build_sp_metadata": "sp",
    "parse_saml_metadata": "metadata",
}

__all__ = [
    "EMAIL_ATTRIBUTES",
    "AuthnRedirect",
    "Role",
    "RoleMap",
    "SAMLAlgorithmError",
    "SAMLAudienceError",
    "SAMLDecryptionError",
    "SAMLDestinationError",
    "SAMLError",
    "SAMLExpiredError",
    "SAMLInResponseToError",
    "SAMLIssuerError",
    "SAMLMetadata",
    "SAMLMetadataError",
    "SAMLNotYetValidError",
    "SAMLParseError",
    "SAMLProvider",
    "SAMLRecipientError",
    "SAMLReplayError",
    "SAMLSignatureError",
    "SAMLStatusError",
    "SAMLStructureError",
    "SAMLSubjectConfirmationError",
    "SAMLTimeError",
    "SAMLUnsafeXMLError",
    "SSOIdentity",
    "SSOProvider",
    "build_authn_redirect",
    "build_sp_metadata",
    "parse_saml_metadata",
]


def __getattr__(name: str) -> object:
    """
    Import the module of a name that needs the saml extra, on first use.
    """
    module = _NEEDS_SAML.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_NEEDS_SAML})
