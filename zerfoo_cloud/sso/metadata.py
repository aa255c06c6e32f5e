"""
IdP metadata: what the SP needs to know about an identity provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from zerfoo_cloud.sso import _ns
from zerfoo_cloud.sso._certs import to_pem
from zerfoo_cloud.sso._xml import DEFAULT_MAX_SIZE, parse_xml, text_of
from zerfoo_cloud.sso.errors import SAMLMetadataError, SAMLParseError

if TYPE_CHECKING:
    from lxml import etree

__all__ = ["SAMLMetadata", "parse_saml_metadata"]

_ENTITY_DESCRIPTOR = _ns.tag(_ns.MD, "EntityDescriptor")
_ENTITIES_DESCRIPTOR = _ns.tag(_ns.MD, "EntitiesDescriptor")
_IDP_DESCRIPTOR = _ns.tag(_ns.MD, "IDPSSODescriptor")
_KEY_DESCRIPTOR = _ns.tag(_ns.MD, "KeyDescriptor")
_SSO_SERVICE = _ns.tag(_ns.MD, "SingleSignOnService")
_NAMEID_FORMAT = _ns.tag(_ns.MD, "NameIDFormat")
_X509_CERT = _ns.tag(_ns.DS, "X509Certificate")
_KEY_INFO = _ns.tag(_ns.DS, "KeyInfo")
_TRUE = frozenset({"true", "1"})


def _pem_tuple(certificates: object) -> tuple[str, ...]:
    if isinstance(certificates, str):
        certificates = (certificates,)
    if not isinstance(certificates, (tuple, list)):
        msg = "signing_certificates must be a sequence of PEM strings"
        raise SAMLMetadataError(msg)
    return tuple(dict.fromkeys(to_pem(str(c)) for c in certificates))


def _pem_or_empty(certificate: str) -> str:
    return to_pem(certificate) if certificate else ""


def _default_signing(self: SAMLMetadata) -> tuple[str, ...]:
    return (self.certificate,) if self.certificate else ()


@attrs.frozen
class SAMLMetadata:
    """
    What the SP knows about one identity provider.

    Build it with `parse_saml_metadata` from the IdP's metadata XML, or by
    hand. Certificates are kept as PEM text (a bare base64 DER body is
    accepted and converted). Every certificate in *signing_certificates* is
    trusted, so an IdP can roll its key over: publish the new certificate
    beside the old one, then drop the old one.

    Attributes:
        entity_id: the IdP's entity id; the Issuer of every response must be it.
        sign_on_url: where to send users to sign in (the HTTP-POST
            SingleSignOnService if the IdP has one, else the first one).
        certificate: the first signing certificate (PEM).
        name_id_format: the first NameIDFormat the IdP announces, or ``""``.
        want_authn_signed: the IdP's ``WantAuthnRequestsSigned``.
        signing_certificates: every trusted signing certificate (PEM);
            defaults to *certificate* alone.
        redirect_sign_on_url: the HTTP-Redirect SingleSignOnService, or
            ``""``; AuthnRequests for that binding go there (else to
            *sign_on_url*).

    .. versionadded:: 0.1.0
    """

    entity_id: str
    sign_on_url: str
    certificate: str = attrs.field(converter=_pem_or_empty)
    name_id_format: str = ""
    want_authn_signed: bool = False
    signing_certificates: tuple[str, ...] = attrs.field(
        default=attrs.Factory(_default_signing, takes_self=True),
        converter=_pem_tuple,
    )
    redirect_sign_on_url: str = ""

    @property
    def trusted_certificates(self) -> tuple[str, ...]:
        """
        Every certificate a signature may be checked with: *certificate* and
        *signing_certificates*, without duplicates.
        """
        return tuple(
            dict.fromkeys(
                c for c in (self.certificate, *self.signing_certificates) if c
            )
        )


def _entity_descriptors(root: etree._Element) -> list[etree._Element]:
    if root.tag == _ENTITY_DESCRIPTOR:
        return [root]
    if root.tag == _ENTITIES_DESCRIPTOR:
        return list(root.iter(_ENTITY_DESCRIPTOR))
    msg = (
        "not SAML metadata: the root element is "
        f"{root.tag!r}, not md:EntityDescriptor or md:EntitiesDescriptor"
    )
    raise SAMLMetadataError(msg)


def _idp_descriptor(entity: etree._Element) -> etree._Element | None:
    for descriptor in entity.iterchildren(_IDP_DESCRIPTOR):
        protocols = (descriptor.get("protocolSupportEnumeration") or "").split()
        if _ns.PROTOCOL in protocols:
            return descriptor
    return None


def _pick(
    root: etree._Element, entity_id: str | None
) -> tuple[etree._Element, etree._Element]:
    candidates = []
    for entity in _entity_descriptors(root):
        descriptor = _idp_descriptor(entity)
        if descriptor is not None:
            candidates.append((entity, descriptor))
    if entity_id is not None:
        for entity, descriptor in candidates:
            if entity.get("entityID") == entity_id:
                return entity, descriptor
        msg = f"the metadata has no SAML 2.0 IdP with entity id {entity_id!r}"
        raise SAMLMetadataError(msg)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        msg = "the metadata has no IDPSSODescriptor supporting SAML 2.0"
        raise SAMLMetadataError(msg)
    ids = ", ".join(repr(e.get("entityID")) for e, _ in candidates[:5])
    msg = (
        f"the metadata describes {len(candidates)} IdPs ({ids}, ...); pass "
        "entity_id to choose one"
    )
    raise SAMLMetadataError(msg)


def _signing_certificates(descriptor: etree._Element) -> tuple[str, ...]:
    pems: list[str] = []
    for key in descriptor.iterchildren(_KEY_DESCRIPTOR):
        if key.get("use", "signing") != "signing":
            continue
        for info in key.iterchildren(_KEY_INFO):
            pems.extend(to_pem(text_of(c)) for c in info.iter(_X509_CERT))
    return tuple(dict.fromkeys(pems))


def _sso_urls(descriptor: etree._Element) -> tuple[str, str]:
    services = [
        (s.get("Binding", ""), s.get("Location", ""))
        for s in descriptor.iterchildren(_SSO_SERVICE)
        if s.get("Location")
    ]
    if not services:
        msg = "the IdP metadata has no SingleSignOnService with a Location"
        raise SAMLMetadataError(msg)
    by_binding = dict(reversed(services))  # first Location of each binding wins
    post = by_binding.get(_ns.BINDING_POST)
    redirect = by_binding.get(_ns.BINDING_REDIRECT, "")
    return post or redirect or services[0][1], redirect


def parse_saml_metadata(
    xml: bytes | str, *, entity_id: str | None = None
) -> SAMLMetadata:
    """
    Read SAML 2.0 IdP metadata.

    Args:
        xml: an ``md:EntityDescriptor``, or an ``md:EntitiesDescriptor`` (a
            federation feed) holding several.
        entity_id: which IdP to take from an ``EntitiesDescriptor``; may be
            left out when the document describes exactly one IdP.

    Returns:
        The IdP's entity id, its sign-on URLs (HTTP-POST preferred), every
        signing certificate (``KeyDescriptor`` with ``use="signing"`` or no
        ``use``), its first NameIDFormat and ``WantAuthnRequestsSigned``.

    Raises:
        SAMLMetadataError: not metadata, no (or no such) SAML 2.0 IdP, no
            SingleSignOnService, no signing certificate, or an unreadable
            certificate.
        SAMLParseError: not well-formed XML, or unsafe XML (a DOCTYPE).

    The metadata's own signature is not checked: fetch it over TLS from the
    IdP, or compare its certificate fingerprint out of band.

    .. versionadded:: 0.1.0
    """
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    try:
        root = parse_xml(xml, max_size=max(DEFAULT_MAX_SIZE, 64 << 20), what="metadata")
    except SAMLParseError as exc:
        raise type(exc)(str(exc)) from exc
    entity, descriptor = _pick(root, entity_id)
    certificates = _signing_certificates(descriptor)
    if not certificates:
        msg = f"the IdP {entity.get('entityID')!r} has no signing certificate"
        raise SAMLMetadataError(msg)
    sign_on_url, redirect_url = _sso_urls(descriptor)
    formats = [text_of(f).strip() for f in descriptor.iterchildren(_NAMEID_FORMAT)]
    return SAMLMetadata(
        entity_id=entity.get("entityID", ""),
        sign_on_url=sign_on_url,
        certificate=certificates[0],
        name_id_format=formats[0] if formats else "",
        want_authn_signed=(descriptor.get("WantAuthnRequestsSigned") or "").strip()
        in _TRUE,
        signing_certificates=certificates,
        redirect_sign_on_url=redirect_url,
    )
