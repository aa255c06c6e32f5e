"""
X.509 certificate helpers: normalise to PEM, read validity dates.
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings

from cryptography import utils, x509

from zerfoo_cloud.sso.errors import SAMLMetadataError

__all__ = ["load_certificate", "to_pem"]

_PEM = re.compile(
    r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL
)
_SPACE = re.compile(r"\s+")


def _der_of(text: str) -> bytes:
    match = _PEM.search(text)
    body = match.group(1) if match else text
    try:
        return base64.b64decode(_SPACE.sub("", body), validate=True)
    except (binascii.Error, ValueError) as exc:
        msg = "a certificate is neither PEM nor base64 DER"
        raise SAMLMetadataError(msg) from exc


def load_certificate(text: str) -> x509.Certificate:
    """
    Parse a certificate given as PEM or as the bare base64 of its DER form
    (what ``ds:X509Certificate`` holds).

    Raises:
        SAMLMetadataError: it is not a readable X.509 certificate.
    """
    der = _der_of(text)
    try:
        with warnings.catch_warnings():
            # Some IdPs' certificates have a negative serial number, which
            # RFC 5280 forbids; the key in them is still the pinned key.
            warnings.simplefilter("ignore", utils.CryptographyDeprecationWarning)
            return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        msg = f"a certificate cannot be read: {exc}"
        raise SAMLMetadataError(msg) from exc


def to_pem(text: str) -> str:
    """
    Return the certificate *text* (PEM or base64 DER) as canonical PEM.

    Raises:
        SAMLMetadataError: it is not a readable X.509 certificate.
    """
    from cryptography.hazmat.primitives.serialization import Encoding

    return load_certificate(text).public_bytes(Encoding.PEM).decode("ascii")
