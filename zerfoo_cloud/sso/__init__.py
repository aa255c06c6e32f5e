"""
Single sign-on: SAML 2.0 Web Browser SSO, service-provider side.

`parse_saml_metadata` reads an IdP's metadata; a `SAMLProvider` built from it
validates the IdP's signed Responses (raw XML or the base64 ``SAMLResponse``
form field) and returns an `SSOIdentity`, or raises a subclass of
`zerfoo_cloud.errors.SAMLError` that says which check failed. It also builds
AuthnRequests for the HTTP-Redirect binding and the SP's own metadata. See
``docs/sso.md``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

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
from zerfoo_cloud.sso.metadata import SAMLMetadata, parse_saml_metadata
from zerfoo_cloud.sso.provider import (
    EMAIL_ATTRIBUTES,
    SAMLProvider,
    SSOIdentity,
    SSOProvider,
)
from zerfoo_cloud.sso.sp import AuthnRedirect, build_authn_redirect, build_sp_metadata

__all__ = [
    "EMAIL_ATTRIBUTES",
    "AuthnRedirect",
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
