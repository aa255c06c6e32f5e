"""
The service provider's own messages: AuthnRequests for the HTTP-Redirect
binding, and SP metadata.

`zerfoo_cloud.SAMLProvider.authn_request` and
`zerfoo_cloud.SAMLProvider.sp_metadata` call these with the provider's
settings; they are public for SPs that keep their settings elsewhere.
"""

from __future__ import annotations

import base64
import secrets
import time
import urllib.parse
import zlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import attrs
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from zerfoo_cloud._extras import needs_extra
from zerfoo_cloud.errors import InvalidConfigError
from zerfoo_cloud.sso import _ns
from zerfoo_cloud.sso._certs import load_certificate

with needs_extra("saml", "SAML single sign-on"):
    from lxml import etree

if TYPE_CHECKING:
    from zerfoo_cloud._clock import Clock

__all__ = [
    "MAX_RELAY_STATE",
    "SIG_ALG_RSA_SHA256",
    "AuthnRedirect",
    "build_authn_redirect",
    "build_sp_metadata",
]

#: The HTTP-Redirect binding limits RelayState to 80 bytes.
MAX_RELAY_STATE = 80
#: The signature algorithm of signed redirects.
SIG_ALG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


@attrs.frozen
class AuthnRedirect:
    """
    An AuthnRequest ready for the HTTP-Redirect binding.

    Attributes:
        id: the request's ID; keep it with the user's session and pass it
            as *request_id* to `zerfoo_cloud.SAMLProvider.validate_assertion`.
        url: where to redirect the user (HTTP 302 ``Location``): the IdP's
            sign-on URL with ``SAMLRequest`` (deflated, base64), ``RelayState``
            and, when signed, ``SigAlg`` and ``Signature``.
        relay_state: the RelayState sent, or ``None``.
        xml: the AuthnRequest XML before encoding.
        signed: whether the redirect carries a signature.

    .. versionadded:: 0.1.0
    """

    id: str
    url: str
    relay_state: str | None
    xml: bytes = attrs.field(repr=False)
    signed: bool = False


def _instant(now: float) -> str:
    return datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_rsa_key(key_pem: bytes, password: bytes | None) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(key_pem, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        msg = "the SP private key cannot be read (PEM, with the right password)"
        raise InvalidConfigError(msg, field="sp_private_key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        msg = "AuthnRequests are signed with RSA-SHA256: the SP key must be RSA"
        raise InvalidConfigError(msg, field="sp_private_key")
    return key


def build_authn_redirect(
    *,
    sso_url: str,
    sp_entity_id: str,
    acs_url: str,
    relay_state: str | None = None,
    force_authn: bool = False,
    is_passive: bool = False,
    name_id_format: str = "",
    sign_key: bytes | None = None,
    sign_key_password: bytes | None = None,
    require_signing: bool = False,
    clock: Clock = time.time,
) -> AuthnRedirect:
    """
    Build an AuthnRequest and encode it for the HTTP-Redirect binding.

    The request asks for the answer by HTTP-POST to *acs_url*. It is
    deflated (raw DEFLATE), base64-encoded and URL-encoded into
    ``SAMLRequest``; with *sign_key*, ``SigAlg`` (RSA-SHA256) and
    ``Signature`` are added over the query string as the binding defines.

    Raises:
        InvalidConfigError: a RelayState over `MAX_RELAY_STATE` bytes, an
            unreadable or non-RSA key, or *require_signing* without a key.

    .. versionadded:: 0.1.0
    """
    if relay_state is not None and len(relay_state.encode("utf-8")) > MAX_RELAY_STATE:
        msg = f"RelayState is limited to {MAX_RELAY_STATE} bytes"
        raise InvalidConfigError(msg, field="relay_state")
    if require_signing and sign_key is None:
        msg = "the IdP wants signed AuthnRequests: configure sp_private_key"
        raise InvalidConfigError(msg, field="sp_private_key")
    key = None if sign_key is None else _load_rsa_key(sign_key, sign_key_password)
    request_id = "_" + secrets.token_hex(20)
    samlp = etree.QName(_ns.PROTOCOL, "AuthnRequest")
    request = etree.Element(samlp, nsmap={"samlp": _ns.PROTOCOL, "saml": _ns.ASSERTION})
    request.set("ID", request_id)
    request.set("Version", "2.0")
    request.set("IssueInstant", _instant(clock()))
    request.set("Destination", sso_url)
    request.set("AssertionConsumerServiceURL", acs_url)
    request.set("ProtocolBinding", _ns.BINDING_POST)
    if force_authn:
        request.set("ForceAuthn", "true")
    if is_passive:
        request.set("IsPassive", "true")
    etree.SubElement(request, etree.QName(_ns.ASSERTION, "Issuer")).text = sp_entity_id
    policy = etree.SubElement(request, etree.QName(_ns.PROTOCOL, "NameIDPolicy"))
    if name_id_format:
        policy.set("Format", name_id_format)
    policy.set("AllowCreate", "true")
    xml = etree.tostring(request, encoding="utf-8", xml_declaration=False)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(xml) + compressor.flush()
    query = "SAMLRequest=" + urllib.parse.quote_plus(base64.b64encode(deflated))
    if relay_state is not None:
        query += "&RelayState=" + urllib.parse.quote_plus(relay_state)
    if key is not None:
        query += "&SigAlg=" + urllib.parse.quote_plus(SIG_ALG_RSA_SHA256)
        signature = key.sign(query.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        query += "&Signature=" + urllib.parse.quote_plus(base64.b64encode(signature))
    separator = "&" if "?" in sso_url else "?"
    return AuthnRedirect(
        id=request_id,
        url=sso_url + separator + query,
        relay_state=relay_state,
        xml=xml,
        signed=key is not None,
    )


def _key_descriptor(parent: etree._Element, use: str, certificate_b64: str) -> None:
    descriptor = etree.SubElement(parent, etree.QName(_ns.MD, "KeyDescriptor"))
    descriptor.set("use", use)
    info = etree.SubElement(descriptor, etree.QName(_ns.DS, "KeyInfo"))
    data = etree.SubElement(info, etree.QName(_ns.DS, "X509Data"))
    etree.SubElement(
        data, etree.QName(_ns.DS, "X509Certificate")
    ).text = certificate_b64


def build_sp_metadata(
    *,
    sp_entity_id: str,
    acs_url: str,
    certificate: str | None = None,
    authn_requests_signed: bool = False,
    want_assertions_signed: bool = True,
    name_id_format: str = "",
    valid_until: float | None = None,
) -> bytes:
    """
    Return SP metadata XML: an ``md:EntityDescriptor`` with one
    ``SPSSODescriptor`` whose AssertionConsumerService takes HTTP-POST at
    *acs_url*.

    Args:
        sp_entity_id: the SP's entity id (the Audience IdPs put in assertions).
        acs_url: the assertion consumer service URL.
        certificate: the SP certificate (PEM); published for signing and for
            encryption, so IdPs can encrypt assertions to it.
        authn_requests_signed: announce that AuthnRequests are signed.
        want_assertions_signed: ask IdPs to sign assertions.
        name_id_format: the NameIDFormat to announce, if any.
        valid_until: Unix seconds for ``validUntil``, if any.

    Raises:
        SAMLMetadataError: *certificate* cannot be read.

    .. versionadded:: 0.1.0
    """
    entity = etree.Element(
        etree.QName(_ns.MD, "EntityDescriptor"), nsmap={"md": _ns.MD, "ds": _ns.DS}
    )
    entity.set("entityID", sp_entity_id)
    if valid_until is not None:
        entity.set("validUntil", _instant(valid_until))
    sp = etree.SubElement(entity, etree.QName(_ns.MD, "SPSSODescriptor"))
    sp.set("AuthnRequestsSigned", "true" if authn_requests_signed else "false")
    sp.set("WantAssertionsSigned", "true" if want_assertions_signed else "false")
    sp.set("protocolSupportEnumeration", _ns.PROTOCOL)
    if certificate is not None:
        from cryptography.hazmat.primitives.serialization import Encoding

        der = load_certificate(certificate).public_bytes(Encoding.DER)
        body = base64.b64encode(der).decode("ascii")
        _key_descriptor(sp, "signing", body)
        _key_descriptor(sp, "encryption", body)
    if name_id_format:
        etree.SubElement(sp, etree.QName(_ns.MD, "NameIDFormat")).text = name_id_format
    acs = etree.SubElement(sp, etree.QName(_ns.MD, "AssertionConsumerService"))
    acs.set("Binding", _ns.BINDING_POST)
    acs.set("Location", acs_url)
    acs.set("index", "0")
    acs.set("isDefault", "true")
    return bytes(etree.tostring(entity, encoding="utf-8", xml_declaration=True))
