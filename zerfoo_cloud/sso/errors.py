"""
Why a SAML document was rejected.

Every class derives from `zerfoo_cloud.errors.SAMLError`, so one
``except SAMLError`` catches every rejection; the subclass and the message say
which check failed::

    SAMLError
    ├── SAMLParseError                  not XML, not base64, too large or too deep, not a Response
    │   └── SAMLUnsafeXMLError          a DOCTYPE, an entity declaration or an entity reference
    ├── SAMLMetadataError               IdP metadata that cannot be used
    ├── SAMLStructureError              duplicate IDs, no or several assertions, a misplaced element
    ├── SAMLSignatureError              no signature, a signature that fails, or covers the wrong element
    │   └── SAMLAlgorithmError          an algorithm or transform that is not allowed (SHA-1, HMAC, ...)
    ├── SAMLDecryptionError             an EncryptedAssertion that cannot be decrypted
    ├── SAMLStatusError                 the IdP answered with a status other than Success
    ├── SAMLIssuerError                 the Issuer is not the IdP's entity id
    ├── SAMLDestinationError            the Response's Destination is not the ACS URL
    ├── SAMLSubjectConfirmationError    no bearer SubjectConfirmation can be used
    │   └── SAMLRecipientError          its Recipient is not the ACS URL
    ├── SAMLInResponseToError           the answer is not to the request the SP sent
    ├── SAMLAudienceError               the SP is not an audience of the assertion
    ├── SAMLTimeError                   outside the validity window
    │   ├── SAMLExpiredError            at or after NotOnOrAfter (plus the clock skew)
    │   └── SAMLNotYetValidError        before NotBefore or IssueInstant (minus the clock skew)
    └── SAMLReplayError                 the assertion was already used

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from zerfoo_cloud.errors import SAMLError

__all__ = [
    "SAMLAlgorithmError",
    "SAMLAudienceError",
    "SAMLDecryptionError",
    "SAMLDestinationError",
    "SAMLExpiredError",
    "SAMLInResponseToError",
    "SAMLIssuerError",
    "SAMLMetadataError",
    "SAMLNotYetValidError",
    "SAMLParseError",
    "SAMLRecipientError",
    "SAMLReplayError",
    "SAMLSignatureError",
    "SAMLStatusError",
    "SAMLStructureError",
    "SAMLSubjectConfirmationError",
    "SAMLTimeError",
    "SAMLUnsafeXMLError",
]


class SAMLParseError(SAMLError):
    """
    The input is not a well-formed SAML document within the size and depth
    limits (or not valid base64).

    .. versionadded:: 0.1.0
    """


class SAMLUnsafeXMLError(SAMLParseError):
    """
    The document has a DOCTYPE, an entity declaration or an entity reference.

    SAML never needs them; they are how XXE and entity-expansion
    ("billion laughs") attacks start, so they are refused before anything
    else is done.

    .. versionadded:: 0.1.0
    """


class SAMLMetadataError(SAMLError):
    """
    IdP metadata cannot be used: not metadata, no IdP descriptor, no signing
    certificate, or an unreadable certificate.

    .. versionadded:: 0.1.0
    """


class SAMLStructureError(SAMLError):
    """
    The document's shape is not one the SP accepts: duplicate IDs, no or
    several assertions, a signature in a place where it cannot be trusted, or
    a required element missing.

    .. versionadded:: 0.1.0
    """


class SAMLSignatureError(SAMLError):
    """
    No trusted signature covers the assertion: none is present, one does not
    verify with a certificate pinned from metadata, or it references another
    element than the one it sits in.

    .. versionadded:: 0.1.0
    """


class SAMLAlgorithmError(SAMLSignatureError):
    """
    A signature uses an algorithm or transform that is not allowed: SHA-1
    while it is turned off, HMAC, inclusive canonicalization, XPath, ...

    *algorithm* is the URI that was refused.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, *, algorithm: str) -> None:
        super().__init__(message)
        self.algorithm = algorithm


class SAMLDecryptionError(SAMLError):
    """
    An EncryptedAssertion cannot be decrypted with the SP's private key (or
    no key was configured). The message never says which step failed, so it
    cannot serve as a padding oracle.

    .. versionadded:: 0.1.0
    """


class SAMLStatusError(SAMLError):
    """
    The IdP answered with a status other than Success.

    *status_code* is the top-level StatusCode URI, *sub_status_code* the
    nested one (or ``""``), *status_message* the IdP's StatusMessage text.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, status_code: str, sub_status_code: str = "", status_message: str = ""
    ) -> None:
        self.status_code = status_code
        self.sub_status_code = sub_status_code
        self.status_message = status_message
        detail = f" ({sub_status_code})" if sub_status_code else ""
        text = f": {status_message}" if status_message else ""
        super().__init__(f"the IdP returned status {status_code}{detail}{text}")


class SAMLIssuerError(SAMLError):
    """
    An Issuer is not the entity id of the IdP in the metadata.

    .. versionadded:: 0.1.0
    """


class SAMLDestinationError(SAMLError):
    """
    The Response's Destination is not the SP's assertion consumer service URL.

    .. versionadded:: 0.1.0
    """


class SAMLSubjectConfirmationError(SAMLError):
    """
    No bearer SubjectConfirmation of the assertion can be used.

    .. versionadded:: 0.1.0
    """


class SAMLRecipientError(SAMLSubjectConfirmationError):
    """
    The bearer SubjectConfirmationData's Recipient is not the SP's assertion
    consumer service URL.

    .. versionadded:: 0.1.0
    """


class SAMLInResponseToError(SAMLError):
    """
    InResponseTo (on the Response or the SubjectConfirmationData) is not the
    id of the AuthnRequest the SP sent, or the SP expected an answer to its
    request and got an unsolicited response.

    .. versionadded:: 0.1.0
    """


class SAMLAudienceError(SAMLError):
    """
    The SP's entity id is not among the assertion's Audiences.

    .. versionadded:: 0.1.0
    """


class SAMLTimeError(SAMLError):
    """
    The document is used outside its validity window.

    .. versionadded:: 0.1.0
    """


class SAMLExpiredError(SAMLTimeError):
    """
    A NotOnOrAfter (Conditions or SubjectConfirmationData) is at or before
    now minus the clock skew.

    .. versionadded:: 0.1.0
    """


class SAMLNotYetValidError(SAMLTimeError):
    """
    A NotBefore or IssueInstant is after now plus the clock skew.

    .. versionadded:: 0.1.0
    """


class SAMLReplayError(SAMLError):
    """
    The assertion was already accepted once (by this process or another one
    sharing the replay cache).

    .. versionadded:: 0.1.0
    """
