"""
XML namespaces and fully qualified tag names used by SAML 2.0.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ASSERTION",
    "DS",
    "MD",
    "NSMAP",
    "PROTOCOL",
    "XENC",
    "tag",
]

ASSERTION: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
PROTOCOL: Final = "urn:oasis:names:tc:SAML:2.0:protocol"
MD: Final = "urn:oasis:names:tc:SAML:2.0:metadata"
DS: Final = "http://www.w3.org/2000/09/xmldsig#"
XENC: Final = "http://www.w3.org/2001/04/xmlenc#"
EC: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
XML: Final = "http://www.w3.org/XML/1998/namespace"

NSMAP: Final = {
    "saml": ASSERTION,
    "samlp": PROTOCOL,
    "md": MD,
    "ds": DS,
    "xenc": XENC,
}

BINDING_POST: Final = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_REDIRECT: Final = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
STATUS_SUCCESS: Final = "urn:oasis:names:tc:SAML:2.0:status:Success"
CM_BEARER: Final = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
NAMEID_EMAIL: Final = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
NAMEID_UNSPECIFIED: Final = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
NAMEID_ENTITY: Final = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"


def tag(namespace: str, local: str) -> str:
    """
    Return the Clark notation ``{namespace}local`` lxml uses for tags.
    """
    return f"{{{namespace}}}{local}"
