"""
Reading IdP metadata: entity descriptors, federation feeds, key rollover.
"""

from __future__ import annotations

import pytest

from tests.sso._idp import KeyPair
from zerfoo_cloud.sso import (
    SAMLMetadata,
    SAMLMetadataError,
    SAMLParseError,
    SAMLUnsafeXMLError,
    parse_saml_metadata,
)

POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def _key(use: str | None, cert: str) -> str:
    attribute = f' use="{use}"' if use else ""
    return (
        f"<md:KeyDescriptor{attribute}><ds:KeyInfo><ds:X509Data>"
        f"<ds:X509Certificate>\n{cert}\n</ds:X509Certificate>"
        "</ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
    )


def _entity(
    entity_id: str,
    keys: str,
    *,
    services: str = "",
    extra: str = "",
    protocols: str = "urn:oasis:names:tc:SAML:2.0:protocol",
) -> str:
    services = services or (
        f'<md:SingleSignOnService Binding="{REDIRECT}" Location="https://idp/redirect"/>'
        f'<md:SingleSignOnService Binding="{POST}" Location="https://idp/post"/>'
    )
    return (
        f'<md:EntityDescriptor entityID="{entity_id}" '
        'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        'xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        f'<md:IDPSSODescriptor WantAuthnRequestsSigned="true" '
        f'protocolSupportEnumeration="{protocols}">'
        f"{keys}<md:NameIDFormat>{EMAIL}</md:NameIDFormat>{services}"
        f"</md:IDPSSODescriptor>{extra}</md:EntityDescriptor>"
    )


def test_entity_descriptor_is_read(idp_keys: KeyPair, sp_keys: KeyPair) -> None:
    """
    Every field comes from the descriptor; signing keys (with or without use) are all kept.
    """
    xml = _entity(
        "https://idp.example.test",
        _key("signing", idp_keys.cert_b64)
        + _key("encryption", sp_keys.cert_b64)
        + _key(None, sp_keys.cert_b64),
    )
    metadata = parse_saml_metadata(xml.encode())
    assert metadata.entity_id == "https://idp.example.test"
    assert metadata.sign_on_url == "https://idp/post"
    assert metadata.redirect_sign_on_url == "https://idp/redirect"
    assert metadata.name_id_format == EMAIL
    assert metadata.want_authn_signed is True
    assert metadata.certificate == idp_keys.cert_pem
    assert metadata.signing_certificates == (idp_keys.cert_pem, sp_keys.cert_pem)
    assert metadata.trusted_certificates == metadata.signing_certificates


def test_entities_descriptor_picks_by_entity_id(
    idp_keys: KeyPair, sp_keys: KeyPair
) -> None:
    """
    A federation feed yields the IdP named by entity_id; without one it is ambiguous.
    """
    feed = (
        '<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">'
        + _entity("urn:a", _key("signing", idp_keys.cert_b64))
        + _entity("urn:b", _key("signing", sp_keys.cert_b64))
        + "</md:EntitiesDescriptor>"
    ).encode()
    assert parse_saml_metadata(feed, entity_id="urn:b").certificate == sp_keys.cert_pem
    with pytest.raises(SAMLMetadataError, match="pass entity_id"):
        parse_saml_metadata(feed)
    with pytest.raises(SAMLMetadataError, match="urn:c"):
        parse_saml_metadata(feed, entity_id="urn:c")


def test_only_binding_is_used_when_there_is_no_post(idp_keys: KeyPair) -> None:
    """
    Without an HTTP-POST service the redirect one is the sign-on URL.
    """
    services = f'<md:SingleSignOnService Binding="{REDIRECT}" Location="https://r"/>'
    xml = _entity("urn:a", _key("signing", idp_keys.cert_b64), services=services)
    metadata = parse_saml_metadata(xml)
    assert metadata.sign_on_url == "https://r"
    assert metadata.redirect_sign_on_url == "https://r"


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<x/>", "not SAML metadata"),
        (
            '<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"/>',
            "no IDPSSODescriptor",
        ),
    ],
)
def test_not_metadata_is_refused(xml: str, message: str) -> None:
    """
    Documents that describe no SAML 2.0 IdP are refused.
    """
    with pytest.raises(SAMLMetadataError, match=message):
        parse_saml_metadata(xml.encode())


def test_idp_without_saml2_or_keys_or_services_is_refused(idp_keys: KeyPair) -> None:
    """
    A SAML 1.1-only IdP, one without signing keys, and one without services are refused.
    """
    key = _key("signing", idp_keys.cert_b64)
    with pytest.raises(SAMLMetadataError, match="no IDPSSODescriptor"):
        parse_saml_metadata(_entity("urn:a", key, protocols="urn:mace:shibboleth:1.0"))
    with pytest.raises(SAMLMetadataError, match="no signing certificate"):
        parse_saml_metadata(_entity("urn:a", _key("encryption", idp_keys.cert_b64)))
    with pytest.raises(SAMLMetadataError, match="SingleSignOnService"):
        parse_saml_metadata(
            _entity("urn:a", key, services="<md:SingleSignOnService Binding='x'/>")
        )


def test_bad_certificate_is_refused() -> None:
    """
    A certificate that is not base64, or not X.509, is refused.
    """
    with pytest.raises(SAMLMetadataError, match="neither PEM nor base64"):
        parse_saml_metadata(_entity("urn:a", _key("signing", "%%%")))
    with pytest.raises(SAMLMetadataError, match="cannot be read"):
        parse_saml_metadata(_entity("urn:a", _key("signing", "AAAA")))


def test_unsafe_or_broken_metadata_is_refused() -> None:
    """
    Metadata with a DOCTYPE, or not well-formed, is refused like a response.
    """
    with pytest.raises(SAMLUnsafeXMLError):
        parse_saml_metadata(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")
    with pytest.raises(SAMLParseError, match="well-formed"):
        parse_saml_metadata(b"<x>")


def test_metadata_by_hand_accepts_base64_and_pem(idp_keys: KeyPair) -> None:
    """
    A certificate given as bare base64 DER is stored as PEM, and is the signing default.
    """
    metadata = SAMLMetadata(
        entity_id="urn:a", sign_on_url="https://s", certificate=idp_keys.cert_b64
    )
    assert metadata.certificate == idp_keys.cert_pem
    assert metadata.signing_certificates == (idp_keys.cert_pem,)
    single = SAMLMetadata(
        entity_id="urn:a",
        sign_on_url="https://s",
        certificate="",
        signing_certificates=idp_keys.cert_pem,
    )
    assert single.trusted_certificates == (idp_keys.cert_pem,)
    with pytest.raises(SAMLMetadataError, match="sequence"):
        SAMLMetadata(
            entity_id="urn:a",
            sign_on_url="https://s",
            certificate="",
            signing_certificates=42,
        )
