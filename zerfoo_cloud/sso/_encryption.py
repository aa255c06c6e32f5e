"""
Decrypting an ``EncryptedAssertion`` with the SP's private key.

The session key is unwrapped from an ``xenc:EncryptedKey`` (inside the
EncryptedData's KeyInfo, or beside it in the EncryptedAssertion, as some IdPs
place it) with the private key set directly on the xmlsec context, so
xmlsec never follows a KeyInfo reference. Only RSA-OAEP key transport and
AES (CBC or GCM) content encryption are allowed, and only inline
``CipherValue`` data: no ``CipherReference`` can make the SP fetch anything.
Every failure gives the same message, so errors reveal nothing a padding
oracle could use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.sso import _ns
from zerfoo_cloud.sso.errors import SAMLDecryptionError

with needs_extra("saml", "SAML single sign-on"):
    import xmlsec

if TYPE_CHECKING:
    from lxml import etree

__all__ = ["ENCRYPTED_ASSERTION", "Decryptor"]

_C = xmlsec.constants

ENCRYPTED_ASSERTION: Final = _ns.tag(_ns.ASSERTION, "EncryptedAssertion")
_ENCRYPTED_DATA = _ns.tag(_ns.XENC, "EncryptedData")
_ENCRYPTED_KEY = _ns.tag(_ns.XENC, "EncryptedKey")
_ENCRYPTION_METHOD = _ns.tag(_ns.XENC, "EncryptionMethod")
_CIPHER_REFERENCE = _ns.tag(_ns.XENC, "CipherReference")
_ASSERTION = _ns.tag(_ns.ASSERTION, "Assertion")
_TYPE_ELEMENT = "http://www.w3.org/2001/04/xmlenc#Element"

_DATA_ALGORITHMS: Final = frozenset(
    t.href
    for t in (
        _C.TransformAes128Cbc,
        _C.TransformAes192Cbc,
        _C.TransformAes256Cbc,
        _C.TransformAes128Gcm,
        _C.TransformAes192Gcm,
        _C.TransformAes256Gcm,
    )
)
_KEY_TRANSPORT: Final = frozenset(
    {
        _C.TransformRsaOaep.href,
        "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    }
)
_FAILED = (
    "the EncryptedAssertion cannot be decrypted with the SP's private key "
    "(wrong key, corrupt data, or an algorithm that is not allowed)"
)


def _method(element: etree._Element) -> str:
    method = element.find(_ENCRYPTION_METHOD)
    return "" if method is None else method.get("Algorithm", "")


class Decryptor:
    """
    Decrypts EncryptedAssertions with one SP private key (PEM).
    """

    def __init__(self, private_key_pem: bytes, password: bytes | None = None) -> None:
        try:
            self._key = xmlsec.Key.from_memory(
                private_key_pem,
                _C.KeyDataFormatPem,
                None if password is None else password.decode("utf-8"),
            )
        except xmlsec.Error as exc:
            msg = "the SP private key cannot be read (PEM, optionally encrypted)"
            raise SAMLDecryptionError(msg) from exc

    def __repr__(self) -> str:
        return "Decryptor(<private key>)"

    def decrypt(self, encrypted: etree._Element) -> etree._Element:
        """
        Replace *encrypted* (an EncryptedAssertion) in its tree by the
        Assertion it holds, and return that Assertion.

        Raises:
            SAMLDecryptionError: the structure, an algorithm or the
                decryption itself failed; the message does not say which.
        """
        data = [c for c in encrypted if c.tag == _ENCRYPTED_DATA]
        keys = list(encrypted.iter(_ENCRYPTED_KEY))
        if (
            len(data) != 1
            or data[0].get("Type", _TYPE_ELEMENT) != _TYPE_ELEMENT
            or _method(data[0]) not in _DATA_ALGORITHMS
            or not keys
            or any(_method(k) not in _KEY_TRANSPORT for k in keys)
            or next(encrypted.iter(_CIPHER_REFERENCE), None) is not None
        ):
            raise SAMLDecryptionError(_FAILED)
        session_key = self._session_key(keys)
        ctx = xmlsec.EncryptionContext()
        try:
            ctx.key = xmlsec.Key.from_binary_data(_C.KeyDataAes, session_key)
            result = ctx.decrypt(data[0])
        except xmlsec.Error as exc:
            raise SAMLDecryptionError(_FAILED) from exc
        children = [c for c in encrypted if isinstance(c.tag, str)]
        assertions = [c for c in children if c.tag == _ASSERTION]
        if isinstance(result, bytes) or len(assertions) != 1:
            raise SAMLDecryptionError(_FAILED)
        assertion = assertions[0]
        parent = encrypted.getparent()
        assert parent is not None
        assertion.tail = encrypted.tail
        parent.replace(encrypted, assertion)
        return assertion

    def _session_key(self, keys: list[etree._Element]) -> bytes:
        for encrypted_key in keys:
            ctx = xmlsec.EncryptionContext()
            ctx.key = self._key
            try:
                result = ctx.decrypt(encrypted_key)
            except xmlsec.Error:
                continue
            if isinstance(result, bytes) and len(result) in (16, 24, 32):
                return result
        raise SAMLDecryptionError(_FAILED)
